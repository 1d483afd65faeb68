#pragma once
// The float baseline's training recipe: `[train]` in an experiment file. Each
// model declares its default; the user's keys override it.
#include <qlab/plugin/options.hpp>

#include <cstdint>
#include <string>

namespace qlab {

struct TrainRecipe {
  std::string optimizer = "sgd";  ///< sgd | adam | adadelta
  double lr = 0.01;
  double momentum = 0.0;  ///< sgd only
  double weight_decay = 0.0;
  std::string schedule = "none";  ///< none | step | cosine
  std::int64_t step_size = 1;     ///< step: decay every step_size epochs
  double gamma = 0.7;             ///< step: multiply lr by gamma
  std::int64_t epochs = 3;
  std::int64_t batch_size = 64;
  std::int64_t seed = 1;
};

/// The usual CIFAR recipe of the VGG and MobileNet papers' code: SGD with
/// momentum 0.9 and weight decay 5e-4, lr 0.05 on a cosine schedule, batches
/// of 128, 10 epochs.
TrainRecipe cifar_recipe();

/// The `[train]` schema whose defaults are `defaults`.
Schema recipe_schema(const TrainRecipe& defaults);
TrainRecipe recipe_from(const Options& options);

}  // namespace qlab
