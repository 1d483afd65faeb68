#include "sweep_slurm.hpp"

#include <qlab/atomic_write.hpp>
#include <qlab/error.hpp>
#include <qlab/script.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

namespace qlab::cli {
namespace {

namespace fs = std::filesystem;

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

// "quickstart-20261122T101500Z": the script and when it was planned.
std::string plan_stem(const std::string& script, const std::string& dir) {
  std::string stamp = utc_now();
  stamp.erase(
      std::remove_if(stamp.begin(), stamp.end(), [](char c) { return c == '-' || c == ':'; }),
      stamp.end());
  const std::string stem = fs::path(script).stem().string() + "-" + stamp;
  std::string out = stem;
  for (int n = 2; fs::exists(fs::path(dir) / (out + ".plan.json")); ++n)
    out = fmt::format("{}-{}", stem, n);
  return out;
}

void report_merge(const MergeSummary& m, const std::string& shards, const std::string& db) {
  if (m.added + m.unchanged + m.kept > 0)
    fmt::print(stderr, "merged the shards of {} into {}: {}\n", shards, db, describe(m));
  for (const auto& p : m.problems) fmt::print(stderr, "qlab: warning: shard not merged: {}\n", p);
}

}  // namespace

int submit_sweep(const SlurmSubmitArgs& args) {
  const Registry registry = discover_plugins();
  ResultStore store(args.db);
  // What earlier arrays finished counts: only points without an ok result
  // are submitted again.
  report_merge(merge_shards(store, args.shards_dir), args.shards_dir, args.db);

  PlanBuilder builder(registry);
  ScriptSettings settings;
  settings.run.cache_dir = args.cache_dir;
  settings.force = args.force;
  settings.args = args.script_args;
  settings.defer = builder.deferrer();
  Script script(registry, store, settings, std::cerr);
  script.run_file(args.script);

  SlurmPlan plan;
  builder.fill(plan);
  if (plan.points.empty()) {
    fmt::print(stderr,
               "every point of {} is stored as ok in {}; nothing to submit (`qlab report {}` "
               "writes its report)\n",
               args.script, args.db, args.script);
    return 0;
  }
  const std::string dir = absolute(args.slurm_dir);
  const std::string stem = plan_stem(args.script, dir);
  plan.path = (fs::path(dir) / (stem + ".plan.json")).string();
  plan.script = absolute(args.script);
  plan.qlab = fs::read_symlink("/proc/self/exe").string();
  plan.cache_dir = absolute(args.cache_dir);
  plan.shards_dir = absolute(args.shards_dir);
  write_plan(plan);

  SlurmOptions options = args.options;
  options.log_dir = dir;
  const std::string baselines_sh = (fs::path(dir) / (stem + ".baselines.sh")).string();
  const std::string points_sh = (fs::path(dir) / (stem + ".points.sh")).string();
  const std::string baselines_script = batch_script(plan, options, SlurmStage::baselines);
  const std::string points_script = batch_script(plan, options, SlurmStage::points);
  write_atomically(baselines_sh, baselines_script);
  write_atomically(points_sh, points_script);
  // The points wait for the baselines; if those fail, Slurm drops them.
  const auto after = [](const std::string& job) {
    return std::vector<std::string>{"--dependency=afterok:" + job, "--kill-on-invalid-dep=yes"};
  };
  if (args.dry_run) {
    fmt::print("# plan: {} ({} points, {} float baselines)\n", plan.path, plan.points.size(),
               plan.baselines.size());
    fmt::print("# BASELINES=$(sbatch --parsable {})\n", baselines_sh);
    fmt::print("# sbatch --parsable {} {}\n\n", fmt::join(after("$BASELINES"), " "), points_sh);
    fmt::print("# {}\n{}\n# {}\n{}", baselines_sh, baselines_script, points_sh, points_script);
    return 0;
  }
  const std::string baselines_job = submit_batch(baselines_sh, {});
  const std::string points_job = submit_batch(points_sh, after(baselines_job));
  fmt::print(
      stderr,
      "submitted {} points as job array {} (after job {}, which trains {} float baselines);\n"
      "task outputs go to {}, results to {}.\n"
      "When the array has ended: qlab results merge --db {} --shards {} && qlab report {}\n",
      plan.points.size(), points_job, baselines_job, plan.baselines.size(), dir, plan.shards_dir,
      args.db, args.shards_dir, args.script);
  fmt::print("{}\n", points_job);
  return 0;
}

int run_plan_task(const std::string& plan_path, long point, long baseline, bool quiet) {
  if ((point < 0) == (baseline < 0))
    throw Error("--plan needs exactly one of --point and --baseline");
  const Registry registry = discover_plugins();
  const SlurmPlan plan = read_plan(plan_path);
  RunSettings run;
  run.cache_dir = plan.cache_dir;
  run.progress = !quiet;
  if (baseline >= 0) {
    run_planned_baseline(plan, static_cast<std::size_t>(baseline), registry, run, std::cerr);
    return 0;
  }
  const PointRecord rec =
      run_planned_point(plan, static_cast<std::size_t>(point), registry, run, std::cerr);
  return rec.status == PointStatus::failed ? 1 : 0;
}

}  // namespace qlab::cli
