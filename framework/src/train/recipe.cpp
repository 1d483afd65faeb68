#include <qlab/plugin/recipe.hpp>

namespace qlab {

TrainRecipe cifar_recipe() {
  TrainRecipe r;
  r.optimizer = "sgd";
  r.lr = 0.05;
  r.momentum = 0.9;
  r.weight_decay = 5e-4;
  r.schedule = "cosine";
  r.batch_size = 128;
  r.epochs = 10;
  return r;
}

Schema recipe_schema(const TrainRecipe& d) {
  Schema s;
  s.string("optimizer", d.optimizer, "sgd, adam or adadelta", {"sgd", "adam", "adadelta"})
      .number("lr", d.lr, "learning rate", 0.0, 100.0)
      .number("momentum", d.momentum, "SGD momentum", 0.0, 1.0)
      .number("weight_decay", d.weight_decay, "L2 penalty", 0.0, 1.0)
      .string("schedule", d.schedule, "learning-rate schedule", {"none", "step", "cosine"})
      .integer("step_size", d.step_size, "step schedule: epochs between decays", 1, 10000)
      .number("gamma", d.gamma, "step schedule: decay factor", 0.0, 1.0)
      .integer("epochs", d.epochs, "training epochs", 0, 100000)
      .integer("batch_size", d.batch_size, "training batch size", 1, 1 << 20)
      .integer("seed", d.seed, "seed for initialisation and shuffling", 0, std::int64_t{1} << 62);
  return s;
}

TrainRecipe recipe_from(const Options& o) {
  TrainRecipe r;
  r.optimizer = o.get<std::string>("optimizer");
  r.lr = o.get<double>("lr");
  r.momentum = o.get<double>("momentum");
  r.weight_decay = o.get<double>("weight_decay");
  r.schedule = o.get<std::string>("schedule");
  r.step_size = o.get<std::int64_t>("step_size");
  r.gamma = o.get<double>("gamma");
  r.epochs = o.get<std::int64_t>("epochs");
  r.batch_size = o.get<std::int64_t>("batch_size");
  r.seed = o.get<std::int64_t>("seed");
  return r;
}

}  // namespace qlab
