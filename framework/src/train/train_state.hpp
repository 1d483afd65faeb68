#pragma once
// What a training run needs to go on where it stopped: written at the end of
// each epoch and when Ctrl-C arrives, read back by the next run.
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/trainer.hpp>

#include <atomic>
#include <csignal>
#include <string>

namespace qlab {

struct TrainState {
  std::int64_t epoch = 0;  ///< 0-based epoch to go on with
  std::int64_t step = 0;   ///< steps of that epoch already done
  double loss_sum = 0;     ///< that epoch's running sums
  std::int64_t correct = 0, seen = 0;
  double seconds = 0;  ///< training time before the stop
  std::vector<EpochStats> done;
  torch::Tensor shuffle;  ///< the shuffle generator at the start of `epoch`
  torch::Tensor global;   ///< LibTorch's default generator (dropout) at the stop
};

void save_train_state(const std::string& path, GraphModule& module,
                      const torch::optim::Optimizer& optimizer, const TrainState& state);
/// Loads a state written for this graph into `module` and `optimizer`;
/// throws qlab::Error naming the file when it is corrupt or another graph's.
TrainState load_train_state(const std::string& path, GraphModule& module,
                            torch::optim::Optimizer& optimizer);

/// Catches SIGINT while it lives (restoring the previous handler after), so
/// training can stop at a step boundary and save.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  bool fired() const;

 private:
  struct sigaction previous_ {};
};

}  // namespace qlab
