// Batch scripts for the two job arrays of a plan, and their submission.
#include "sweep/child_process.hpp"

#include <qlab/error.hpp>
#include <qlab/slurm.hpp>
#include <qlab/version.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace qlab {
namespace {

// A word the shell reads back unchanged.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string batch_script(const SlurmPlan& plan, const SlurmOptions& o, SlurmStage stage) {
  const bool points = stage == SlurmStage::points;
  const std::size_t count = points ? plan.points.size() : plan.baselines.size();
  const std::string kind = points ? "points" : "baselines";
  const std::string plan_stem = std::filesystem::path(plan.path).stem().stem().string();
  std::string s = "#!/bin/bash\n";
  s += fmt::format("# Written by `qlab sweep --slurm` (qlab {}) for {}:\n", version(), plan.script);
  s += fmt::format("# {} {} of the plan {}.\n", count, points ? "sweep points" : "float baselines",
                   plan.path);
  s += fmt::format("#SBATCH --job-name=qlab-{}-{}\n", plan_stem, kind);
  s += fmt::format("#SBATCH --array=0-{}{}\n", count - 1,
                   o.array_limit > 0 ? fmt::format("%{}", o.array_limit) : "");
  s += fmt::format("#SBATCH --output={}/{}-{}-%A_%a.out\n", o.log_dir, plan_stem, kind);
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", o.time);
  if (o.gpus_per_task > 0) s += fmt::format("#SBATCH --gpus-per-task={}\n", o.gpus_per_task);
  for (const auto& extra : o.sbatch_args) s += fmt::format("#SBATCH {}\n", extra);
  s += fmt::format("exec {} sweep --plan {} --{} \"$SLURM_ARRAY_TASK_ID\"\n",
                   shell_quote(plan.qlab), shell_quote(plan.path), points ? "point" : "baseline");
  return s;
}

std::string submit_batch(const std::string& script_path, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"sbatch", "--parsable"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(script_path);
  std::string output;
  const ChildExit exit =
      run_child(args, /*discard_stdout=*/false,
                [&](const char* data, std::size_t size) { output.append(data, size); });
  if (exit.spawn_error == ENOENT)
    throw Error(
        "sbatch is not on PATH: --slurm submits to a Slurm cluster (on a machine without one, "
        "--dry-run prints the batch scripts)");
  if (exit.spawn_error != 0)
    throw Error(fmt::format("cannot start sbatch: {}", std::strerror(exit.spawn_error)));
  if (exit.signal != 0 || exit.code != 0)
    throw Error(fmt::format("sbatch refused {} ({}): {}", script_path,
                            exit.signal ? fmt::format("signal {}", exit.signal)
                                        : fmt::format("exit status {}", exit.code),
                            trimmed(output)));
  // --parsable prints "jobid" or "jobid;cluster", after any warnings.
  const std::string text = trimmed(output);
  const std::string line = text.substr(text.find_last_of('\n') + 1);
  const std::string id = line.substr(0, line.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error(fmt::format("sbatch printed no job id for {}: {}", script_path, trimmed(output)));
  return id;
}

}  // namespace qlab
