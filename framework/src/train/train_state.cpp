#include "train/train_state.hpp"

#include "io/archive_io.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

namespace qlab {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) { g_interrupted = true; }

nlohmann::json stats_json(const std::vector<EpochStats>& done) {
  TrainReport r;
  r.epochs = done;
  return epochs_json(r);
}

}  // namespace

void save_train_state(const std::string& path, GraphModule& module,
                      const torch::optim::Optimizer& optimizer, const TrainState& s) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model(archive.compilation_unit()),
      optim(archive.compilation_unit());
  module->save(model);
  optimizer.save(optim);
  archive.write("model", model);
  archive.write("optimizer", optim);
  archive.write("shuffle", s.shuffle, /*is_buffer=*/true);
  archive.write("default_generator", s.global, /*is_buffer=*/true);
  const nlohmann::json meta = {{"kind", "train_state"},
                               {"graph_signature", module->graph().signature()},
                               {"epoch", s.epoch},
                               {"step", s.step},
                               {"loss_sum", s.loss_sum},
                               {"correct", s.correct},
                               {"seen", s.seen},
                               {"seconds", s.seconds},
                               {"done", stats_json(s.done)}};
  write_atomically(path, archive_bytes(archive, meta));
}

TrainState load_train_state(const std::string& path, GraphModule& module,
                            torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive;
  const nlohmann::json meta = open_archive(path, archive);
  if (meta.value("kind", "") != "train_state")
    throw Error(fmt::format("{}: not a training checkpoint", path));
  if (meta.value("graph_signature", "") != module->graph().signature())
    throw Error(fmt::format(
        "{}: a training checkpoint of another architecture; delete it to train from scratch",
        path));
  TrainState s;
  try {
    torch::serialize::InputArchive model, optim;
    archive.read("model", model);
    archive.read("optimizer", optim);
    module->load(model);
    optimizer.load(optim);
    archive.read("shuffle", s.shuffle, /*is_buffer=*/true);
    archive.read("default_generator", s.global, /*is_buffer=*/true);
    s.epoch = meta.at("epoch").get<std::int64_t>();
    s.step = meta.at("step").get<std::int64_t>();
    s.loss_sum = meta.at("loss_sum").get<double>();
    s.correct = meta.at("correct").get<std::int64_t>();
    s.seen = meta.at("seen").get<std::int64_t>();
    s.seconds = meta.at("seconds").get<double>();
    for (const auto& e : meta.at("done"))
      s.done.push_back({e.at("epoch").get<std::int64_t>(), e.at("loss").get<double>(),
                        e.at("accuracy").get<double>(), e.at("seconds").get<double>(),
                        e.at("lr").get<double>()});
  } catch (const c10::Error& e) {
    throw Error(
        fmt::format("{}: corrupt training checkpoint: {}", path, e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: corrupt training checkpoint: {}", path, e.what()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // LibTorch's parser throws plain runtime_error
    throw Error(fmt::format("{}: corrupt training checkpoint: {}", path, e.what()));
  }
  return s;
}

InterruptGuard::InterruptGuard() {
  g_interrupted = false;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &previous_);
}

InterruptGuard::~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }

bool InterruptGuard::fired() const { return g_interrupted; }

}  // namespace qlab
