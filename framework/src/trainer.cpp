#include "adadelta.hpp"

#include <qlab/error.hpp>
#include <qlab/progress.hpp>
#include <qlab/trainer.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace qlab {
namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(GraphModule& m, const TrainRecipe& r,
                                                        const std::vector<torch::Tensor>& extra) {
  auto params = m->parameters();
  params.insert(params.end(), extra.begin(), extra.end());
  if (r.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(r.lr).momentum(r.momentum).weight_decay(r.weight_decay));
  if (r.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(r.lr).weight_decay(r.weight_decay));
  if (r.optimizer == "adadelta")
    return std::make_unique<Adadelta>(params, AdadeltaOptions(r.lr).weight_decay(r.weight_decay));
  throw Error(fmt::format("[train] optimizer: unknown optimizer '{}'", r.optimizer));
}

double scheduled_lr(const TrainRecipe& r, std::int64_t epoch) {
  if (r.schedule == "step")
    return r.lr * std::pow(r.gamma, static_cast<double>(epoch / r.step_size));
  if (r.schedule == "cosine")
    return r.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(r.epochs)));
  return r.lr;
}

}  // namespace

nlohmann::json epochs_json(const TrainReport& report) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : report.epochs)
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"accuracy", e.accuracy},
                      {"seconds", e.seconds}, {"lr", e.lr}});
  return epochs;
}

void seed_everything(std::int64_t seed) { torch::manual_seed(static_cast<std::uint64_t>(seed)); }

TrainReport train(GraphModule& module, const Model& model, const Dataset& data,
                  const TrainRecipe& recipe, const TrainSettings& settings,
                  const TrainHooks& hooks) {
  const std::int64_t n = data.size();
  if (n == 0) throw Error("training set is empty");
  module->to(settings.device);
  module->train();
  auto optimizer = make_optimizer(module, recipe, hooks.parameters);
  // Shuffling has its own generator, so it does not depend on how many random
  // numbers weight initialisation or dropout drew.
  auto shuffle = at::detail::createCPUGenerator(static_cast<std::uint64_t>(recipe.seed));
  const bool classify = model.task() == Task::classify;
  const std::int64_t bs = recipe.batch_size;
  const std::int64_t steps = (n + bs - 1) / bs;
  const torch::Tensor images = data.images.to(settings.device);
  const torch::Tensor labels = data.labels.to(settings.device);

  TrainReport report;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t epoch = 0; epoch < recipe.epochs; ++epoch) {
    const auto e0 = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(recipe, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    if (hooks.on_epoch) hooks.on_epoch(epoch);
    auto order = torch::randperm(n, shuffle, torch::TensorOptions().dtype(torch::kInt64))
                     .to(settings.device);
    Progress bar(fmt::format("{}epoch {}/{}", settings.label, epoch + 1, recipe.epochs), steps);
    double loss_sum = 0;
    std::int64_t correct = 0, seen = 0;
    for (std::int64_t step = 0; step < steps; ++step) {
      auto idx = order.slice(0, step * bs, std::min(n, (step + 1) * bs));
      auto x = images.index_select(0, idx);
      auto y = labels.index_select(0, idx);
      optimizer->zero_grad();
      auto outputs = hooks.outputs || hooks.weights ? module->forward(x, hooks.outputs, hooks.weights)
                                                    : module->forward(x);
      auto loss = model.loss(outputs, x, y);
      const double value = loss.item<double>();
      if (!std::isfinite(value))
        throw Error(fmt::format("training diverged: loss is {} at epoch {} step {} (lr {}); "
                                "lower [train] lr",
                                value, epoch + 1, step + 1, lr));
      loss.backward();
      optimizer->step();
      const auto b = idx.size(0);
      loss_sum += value * static_cast<double>(b);
      seen += b;
      if (classify) correct += outputs[0].argmax(1).eq(y).sum().item<std::int64_t>();
      if (settings.progress)
        bar.update(step + 1, classify ? fmt::format("loss {:.4f} acc {:.2f}%", loss_sum / seen,
                                                    100.0 * correct / seen)
                                      : fmt::format("loss {:.4f}", loss_sum / seen));
    }
    EpochStats st;
    st.epoch = epoch + 1;
    st.loss = loss_sum / static_cast<double>(seen);
    st.accuracy = classify ? 100.0 * static_cast<double>(correct) / static_cast<double>(seen) : -1;
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
    st.lr = lr;
    if (settings.progress)
      bar.finish(classify ? fmt::format("loss {:.4f} acc {:.2f}%", st.loss, st.accuracy)
                          : fmt::format("loss {:.4f}", st.loss));
    report.epochs.push_back(st);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  module->eval();
  return report;
}

}  // namespace qlab
