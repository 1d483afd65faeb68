#pragma once
// Runs another program and hands its output over as it comes: the one place
// qlab starts a child process (an isolated sweep point, sbatch).
#include <functional>
#include <string>
#include <vector>

namespace qlab {

struct ChildExit {
  int spawn_error = 0;  ///< errno when it could not start (ENOENT: not found)
  int signal = 0;       ///< the signal that ended it, or 0
  int code = 0;         ///< its exit status, when no signal ended it
};

/// Runs args[0] (looked up on PATH unless it has a slash) with `args`. Its
/// stderr, and its stdout too unless `discard_stdout`, go to `on_output`
/// chunk by chunk; stdin is this process's.
ChildExit run_child(std::vector<std::string> args, bool discard_stdout,
                    const std::function<void(const char* data, std::size_t size)>& on_output);

}  // namespace qlab
