#include "train/adadelta.hpp"
#include "train/train_state.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/progress.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>

namespace qlab {
namespace {

torch::Tensor generator_state(at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(at::Generator& g, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

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
    return r.lr * 0.5 *
           (1.0 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(r.epochs)));
  return r.lr;
}

}  // namespace

nlohmann::json epochs_json(const TrainReport& report) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : report.epochs)
    epochs.push_back({{"epoch", e.epoch},
                      {"loss", e.loss},
                      {"accuracy", e.accuracy},
                      {"seconds", e.seconds},
                      {"lr", e.lr}});
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
  auto global = at::detail::getDefaultCPUGenerator();
  const bool classify = model.task() == Task::classify;
  const std::int64_t bs = recipe.batch_size;
  const std::int64_t steps = (n + bs - 1) / bs;
  const torch::Tensor images = data.images.to(settings.device);
  const torch::Tensor labels = data.labels.to(settings.device);

  TrainReport report;
  TrainState state;
  const bool checkpoints = !settings.resume_path.empty();
  if (checkpoints && std::filesystem::exists(settings.resume_path)) {
    state = load_train_state(settings.resume_path, module, *optimizer);
    module->to(settings.device);
    set_generator_state(shuffle, state.shuffle);
    set_generator_state(global, state.global);
    report.epochs = state.done;
    report.resumed = fmt::format("epoch {} step {}", state.epoch + 1, state.step);
  }
  const InterruptGuard interrupt;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return state.seconds +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Ctrl-C: save where training stands (when it checkpoints) and stop.
  auto stop = [&](const std::string& where, const TrainState& at) {
    std::string saved = "training is not checkpointed here, so the next run starts it again";
    if (checkpoints) {
      save_train_state(settings.resume_path, module, *optimizer, at);
      saved = "saved " + settings.resume_path + "; the same command resumes from it";
    }
    throw Interrupted(fmt::format("interrupted {}: {}", where, saved));
  };
  for (std::int64_t epoch = state.epoch; epoch < recipe.epochs; ++epoch) {
    const auto e0 = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(recipe, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    if (hooks.on_epoch) hooks.on_epoch(epoch);
    const torch::Tensor epoch_start = checkpoints ? generator_state(shuffle) : torch::Tensor();
    auto order = torch::randperm(n, shuffle, torch::TensorOptions().dtype(torch::kInt64))
                     .to(settings.device);
    Progress bar(fmt::format("{}epoch {}/{}", settings.label, epoch + 1, recipe.epochs), steps);
    const bool resuming = epoch == state.epoch;
    double loss_sum = resuming ? state.loss_sum : 0;
    std::int64_t correct = resuming ? state.correct : 0, seen = resuming ? state.seen : 0;
    for (std::int64_t step = resuming ? state.step : 0; step < steps; ++step) {
      auto idx = order.slice(0, step * bs, std::min(n, (step + 1) * bs));
      auto x = images.index_select(0, idx);
      auto y = labels.index_select(0, idx);
      optimizer->zero_grad();
      auto outputs = hooks.outputs || hooks.weights
                         ? module->forward(x, hooks.outputs, hooks.weights)
                         : module->forward(x);
      auto loss = model.loss(outputs, x, y);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        const bool kept = checkpoints && std::filesystem::exists(settings.resume_path);
        throw Error(fmt::format(
            "training diverged: loss is {} at epoch {} step {} (lr {}); lower [train] lr{}", value,
            epoch + 1, step + 1, lr,
            kept ? fmt::format(". The last good checkpoint, from the end of epoch {}, stays at {}",
                               epoch, settings.resume_path)
                 : ""));
      }
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
      if (interrupt.fired() && step + 1 < steps)
        stop(fmt::format("at epoch {} step {} of {}", epoch + 1, step + 1, steps),
             {epoch, step + 1, loss_sum, correct, seen, elapsed(), report.epochs, epoch_start,
              generator_state(global)});
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
    const TrainState next{epoch + 1,
                          0,
                          0,
                          0,
                          0,
                          elapsed(),
                          report.epochs,
                          generator_state(shuffle),
                          generator_state(global)};
    if (checkpoints) save_train_state(settings.resume_path, module, *optimizer, next);
    if (interrupt.fired() && epoch + 1 < recipe.epochs)
      stop(fmt::format("after epoch {}", epoch + 1), next);
  }
  report.seconds = elapsed();
  module->eval();
  return report;
}

}  // namespace qlab
