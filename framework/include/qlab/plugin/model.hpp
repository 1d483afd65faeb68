#pragma once
// Model plugins: which network, for which task, with which loss and default
// training recipe. The network itself is a qlab::Graph.
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/options.hpp>
#include <qlab/plugin/plugin.hpp>
#include <qlab/plugin/recipe.hpp>

namespace qlab {

enum class Task { classify, reconstruct };

/// What a model is built for: the sample shape it takes and the class count.
struct DataInfo {
  std::string dataset;
  Shape input;
  std::int64_t classes = 0;
};

class Model : public Plugin {
 public:
  /// Options the model accepts in `[model]` (besides `name`).
  virtual Schema options() const { return {}; }
  /// The recipe `[train]` keys override.
  virtual TrainRecipe default_recipe() const = 0;
  /// Classification models are scored by accuracy; reconstruction ones are not.
  virtual Task task() const { return Task::classify; }
  /// Whether inputs are normalised by the training set's mean and standard
  /// deviation; false keeps pixels in [0, 1] (e.g. for a BCE reconstruction loss).
  virtual bool normalize_inputs() const { return true; }
  /// The sample shape {C, H, W} the model wants, given the dataset's own; the
  /// data layer pads and repeats channels to match.
  virtual Shape input_shape(const Shape& dataset_shape, const Options& opts) const = 0;
  /// Builds the float graph for `data` (whose input is input_shape's answer).
  virtual Graph build(const Options& opts, const DataInfo& data) const = 0;
  /// Mean loss over a batch, differentiable. Default: cross-entropy of outputs[0].
  virtual torch::Tensor loss(const std::vector<torch::Tensor>& outputs, const torch::Tensor& images,
                             const torch::Tensor& labels) const {
    (void)images;
    return torch::nn::functional::cross_entropy(outputs.at(0), labels);
  }
};

}  // namespace qlab
