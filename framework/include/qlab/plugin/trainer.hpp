#pragma once
// Trains a GraphModule on an in-memory Dataset: deterministic for a seed,
// batches are slices of tensors (no per-sample work on the hot path).
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/model.hpp>
#include <qlab/plugin/recipe.hpp>

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

namespace qlab {

struct EpochStats {
  std::int64_t epoch = 0;
  double loss = 0;       ///< mean training loss
  double accuracy = -1;  ///< training accuracy in percent; -1 if not a classifier
  double seconds = 0;
  double lr = 0;
};

struct TrainReport {
  std::vector<EpochStats> epochs;
  double seconds = 0;
  std::string resumed;  ///< "epoch 2 step 31" when it resumed a checkpoint
};

struct TrainSettings {
  torch::Device device = torch::kCPU;
  bool progress = true;  ///< show a progress bar (plain lines if not a terminal)
  std::string label;     ///< shown before the bar
  /// Where training keeps a checkpoint of its own (model, optimizer, epoch,
  /// step, random generators): written at the end of every epoch and at the
  /// step where Ctrl-C (SIGINT) arrives, and resumed from when it exists, so
  /// the resumed run ends with the weights an uninterrupted one would have.
  /// Empty: no checkpoint; Ctrl-C then stops training without one.
  std::string resume_path;
};

/// What training-aware quantization adds to a training run: fake-quant on
/// node outputs and on weights, its own trainable tensors (LSQ's step
/// sizes), and a call at the start of each epoch (to freeze observers or
/// batch-norm statistics).
struct TrainHooks {
  GraphModuleImpl::NodeHook outputs;
  GraphModuleImpl::WeightHook weights;
  std::vector<torch::Tensor> parameters;
  std::function<void(std::int64_t epoch)> on_epoch;  ///< 0-based
};

/// The epochs as result rows store them: epoch, loss, accuracy, seconds, lr.
nlohmann::json epochs_json(const TrainReport& report);

/// Seeds LibTorch's generator so that weight initialisation is reproducible.
void seed_everything(std::int64_t seed);

/// Trains `module` in place. Throws qlab::Error when the loss is NaN or
/// infinite, naming epoch and step (the last end-of-epoch checkpoint is
/// kept), and qlab::Interrupted on SIGINT, after saving its checkpoint.
TrainReport train(GraphModule& module, const Model& model, const Dataset& data,
                  const TrainRecipe& recipe, const TrainSettings& settings,
                  const TrainHooks& hooks = {});

}  // namespace qlab
