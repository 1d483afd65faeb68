// `qlab sweep` runs a Lua sweep script; `qlab report` re-runs it against the
// results store alone, so the report is rebuilt without training anything.
#include "commands.hpp"
#include "sweep_slurm.hpp"

#include <qlab/error.hpp>
#include <qlab/script.hpp>

#include <fmt/format.h>

#include <iostream>
#include <memory>

namespace qlab::cli {
namespace {

struct SweepArgs {
  std::string script;
  std::vector<std::string> script_args;
  std::string db = kDefaultDb;
  std::string cache_dir = ".qlab/cache";
  std::string reports = "reports";
  bool force = false;
  bool no_cache = false;
  bool quiet = false;
  bool isolate = false;
  double max_seconds = 0;
  // Slurm: submitting, and running one task of a plan.
  bool slurm = false;
  SlurmSubmitArgs submit;
  std::string plan;
  long point = -1, baseline = -1;
};

int run_script(const SweepArgs& args, bool report_only) {
  if (args.script.empty()) throw Error("a Lua sweep script is required (`qlab sweep SCRIPT.lua`)");
  const Registry registry = discover_plugins();
  ResultStore store(args.db);
  ScriptSettings settings;
  settings.run.cache_dir = args.cache_dir;
  settings.run.use_cache = !args.no_cache;
  settings.run.progress = !args.quiet;
  settings.force = args.force;
  settings.report_only = report_only;
  settings.reports_root = args.reports;
  settings.args = args.script_args;
  settings.isolate = args.isolate;
  settings.max_seconds = args.max_seconds;
  Script script(registry, store, settings, std::cerr);
  script.run_file(args.script);
  if (script.failures().empty()) return 0;
  fmt::print(
      stderr,
      "qlab: {} point(s) failed; they are stored with their messages in {} and re-run next time:\n",
      script.failures().size(), args.db);
  for (const auto& f : script.failures()) fmt::print(stderr, "  {}\n", f);
  return 1;
}

void add_common(CLI::App* cmd, SweepArgs& args) {
  cmd->add_option("script", args.script, "Lua sweep script")->check(CLI::ExistingFile);
  cmd->add_option("args", args.script_args,
                  "key=value settings for the script's qlab.args{...}, after --");
  cmd->add_option("--reports", args.reports, "folder reports are written under")
      ->capture_default_str();
}

}  // namespace

void add_sweep_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand(
      "sweep", "Run a Lua sweep script; every finished point is stored, stored points are skipped");
  add_common(cmd, *args);
  cmd->add_option("--db", args->db, "results store (SQLite)")->capture_default_str();
  cmd->add_option("--cache", args->cache_dir, "folder of cached float baselines")
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "re-run points that are already stored");
  cmd->add_flag("--no-cache", args->no_cache, "retrain float baselines even if cached");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress bars");
  cmd->add_flag("--isolate", args->isolate,
                "run each point in a child process: a crash (segfault, abort, out of memory) fails "
                "that point only");
  cmd->add_option(
         "--max-seconds", args->max_seconds,
         "stop the script's Lua code with an error once it has run this long (0: no bound)")
      ->check(CLI::NonNegativeNumber);

  auto* slurm = cmd->add_flag(
      "--slurm", args->slurm,
      "submit the points without an ok result to Slurm as a job array, instead of running them");
  auto& sub = args->submit;
  const std::vector<CLI::Option*> slurm_options{
      cmd->add_option("--partition", sub.options.partition, "Slurm partition"),
      cmd->add_option("--time", sub.options.time, "Slurm time limit of each task, e.g. 2:00:00"),
      cmd->add_option("--gpus-per-task", sub.options.gpus_per_task, "GPUs each task asks for")
          ->check(CLI::NonNegativeNumber),
      cmd->add_option("--array-limit", sub.options.array_limit, "most array tasks running at once")
          ->check(CLI::PositiveNumber),
      cmd->add_option(
          "--sbatch", sub.options.sbatch_args,
          "another sbatch option for every task, passed through (repeatable: --sbatch=--mem=8G)"),
      cmd->add_flag("--dry-run", sub.dry_run,
                    "write the plan and print the batch scripts; submit nothing"),
      cmd->add_option("--slurm-dir", sub.slurm_dir,
                      "folder of plans, batch scripts and task outputs")
          ->capture_default_str(),
  };
  for (auto* o : slurm_options) o->needs(slurm);
  cmd->add_option("--shards", sub.shards_dir, "folder each Slurm task writes its point to")
      ->capture_default_str();
  auto* plan =
      cmd->add_option("--plan", args->plan, "(a Slurm task) the plan file written by --slurm");
  cmd->add_option("--point", args->point, "(a Slurm task) run this point of --plan")
      ->needs(plan)
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--baseline", args->baseline,
                  "(a Slurm task) train this float baseline of --plan")
      ->needs(plan)
      ->check(CLI::NonNegativeNumber);
  plan->excludes(slurm);
  cmd->callback([args, &exit_code] {
    if (!args->plan.empty()) {
      exit_code = run_plan_task(args->plan, args->point, args->baseline, args->quiet);
    } else if (args->slurm) {
      if (args->script.empty())
        throw Error("--slurm needs a Lua sweep script (`qlab sweep SCRIPT.lua --slurm`)");
      SlurmSubmitArgs sub = args->submit;
      sub.script = args->script;
      sub.script_args = args->script_args;
      sub.db = args->db;
      sub.cache_dir = args->cache_dir;
      sub.force = args->force;
      exit_code = submit_sweep(sub);
    } else {
      exit_code = run_script(*args, false);
    }
  });
}

void add_report_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand(
      "report", "Rebuild a sweep script's report from the results store, without running anything");
  add_common(cmd, *args);
  cmd->add_option("--from", args->db, "results store (SQLite)")->capture_default_str();
  cmd->callback([args, &exit_code] { exit_code = run_script(*args, true); });
}

}  // namespace qlab::cli
