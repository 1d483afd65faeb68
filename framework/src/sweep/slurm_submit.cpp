// Batch scripts for the two job arrays of a plan, and their submission.
#include <qlab/error.hpp>
#include <qlab/slurm.hpp>
#include <qlab/version.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace qlab {
namespace {

// A word the shell reads back unchanged.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs argv (found on PATH), returning its exit status and what it printed
// on stdout and stderr together.
int run_captured(std::vector<std::string> args, std::string& output) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe(out) != 0) throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addclose(&actions, out[1]);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    return -spawned;
  }
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
  s += fmt::format("# {} {} of the plan {}.\n", count, points ? "sweep points" : "float baselines", plan.path);
  s += fmt::format("#SBATCH --job-name=qlab-{}-{}\n", plan_stem, kind);
  s += fmt::format("#SBATCH --array=0-{}{}\n", count - 1, o.array_limit > 0 ? fmt::format("%{}", o.array_limit) : "");
  s += fmt::format("#SBATCH --output={}/{}-{}-%A_%a.out\n", o.log_dir, plan_stem, kind);
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", o.time);
  if (o.gpus_per_task > 0) s += fmt::format("#SBATCH --gpus-per-task={}\n", o.gpus_per_task);
  for (const auto& extra : o.sbatch_args) s += fmt::format("#SBATCH {}\n", extra);
  s += fmt::format("exec {} sweep --plan {} --{} \"$SLURM_ARRAY_TASK_ID\"\n", shell_quote(plan.qlab),
                   shell_quote(plan.path), points ? "point" : "baseline");
  return s;
}

std::string submit_batch(const std::string& script_path, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"sbatch", "--parsable"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(script_path);
  std::string output;
  const int status = run_captured(args, output);
  if (status == -ENOENT)
    throw Error("sbatch is not on PATH: --slurm submits to a Slurm cluster (on a machine without one, "
                "--dry-run prints the batch scripts)");
  if (status < 0) throw Error(fmt::format("cannot start sbatch: {}", std::strerror(-status)));
  if (status != 0)
    throw Error(fmt::format("sbatch refused {} (exit status {}): {}", script_path, status, trimmed(output)));
  // --parsable prints "jobid" or "jobid;cluster", after any warnings.
  const std::string text = trimmed(output);
  const std::string line = text.substr(text.find_last_of('\n') + 1);
  const std::string id = line.substr(0, line.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error(fmt::format("sbatch printed no job id for {}: {}", script_path, trimmed(output)));
  return id;
}

}  // namespace qlab
