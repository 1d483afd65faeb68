// The float baseline every experiment starts from: the backend set up, the
// data loaded, the graph built, the model trained or read from the cache,
// each shared with earlier points of a sweep where they can be.
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/version.hpp>

#include "experiment/baseline.hpp"
#include "experiment/shared_work.hpp"
#include "experiment/stable_hash.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <filesystem>
#include <ostream>

namespace qlab {
namespace {

namespace fs = std::filesystem;

// A graph with an op the backend cannot run even in fp32 is refused here,
// before the baseline is trained, not when it is lowered.
void refuse_unsupported_ops(const Backend& backend, const std::string& name, const Graph& graph) {
  for (const Node& n : graph.nodes())
    if (n.op != Op::input && !backend.supports(n.op, Mode::fp32))
      throw Error(fmt::format("backend '{}' cannot run {} ({}), even in fp32", name, n.name,
                              to_string(n.op)));
}

// The dataset, loaded or (in a sweep) shared with an earlier point. Shared
// tensors are never written to: every consumer slices or copies them.
DataSplits dataset(const Resolved& r, const Shape& wanted, const std::string& key,
                   SharedWork* shared, std::ostream& log) {
  if (shared) {
    for (const auto& [k, data] : shared->state().datasets)
      if (k == key) return data;
  }
  DataSplits data = load_dataset(r.data_cfg, wanted, r.model->normalize_inputs());
  log << fmt::format("dataset {}: {} train / {} test samples from {}\n", data.name,
                     data.train.size(), data.test.size(), data.source);
  if (!data.fallback_reason.empty()) log << "note: " << data.fallback_reason << "\n";
  if (shared) {
    auto& kept = shared->state().datasets;
    kept.emplace_back(key, data);
    if (kept.size() > SharedWork::State::kDatasetsKept) kept.pop_front();
    ++shared->state().counts.datasets_loaded;
  }
  return data;
}

// The float baseline in `module`: the [model] weights file when there is
// one; else from the cache when everything that determines it is there,
// else trained and cached. Fills the row's training curve and notes;
// returns the training time.
double float_baseline(GraphModule& module, const Resolved& r, const Dataset& train_set,
                      const nlohmann::json& identity, const std::string& key,
                      const RunSettings& settings, ResultRow& row) {
  if (!r.weights.empty()) {
    for (auto& note : load_float_weights(*r.weights_bytes, r.weights, module))
      row.notes.push_back(std::move(note));
    return 0.0;
  }
  const fs::path cache(settings.cache_dir);
  const std::string ckpt = (cache / fmt::format("{}-{}.safetensors", r.model_name, key)).string();
  if (settings.use_cache && fs::exists(ckpt)) {
    const auto meta = load_checkpoint(ckpt, module);
    row.training = meta.value("epochs", nlohmann::json::array());
    row.notes.push_back("float baseline loaded from cache " + ckpt);
    return meta.value("train_seconds", 0.0);
  }
  TrainSettings ts;
  ts.device = r.backend->device();
  ts.progress = settings.progress;
  ts.label = r.model_name + " ";
  // Training keeps its own checkpoint beside the cached one: Ctrl-C, or a
  // NaN after some good epochs, loses at most the epoch in progress.
  ts.resume_path = (cache / fmt::format("{}-{}.resume.pt", r.model_name, key)).string();
  if (!settings.use_cache) fs::remove(ts.resume_path);
  const TrainReport rep = train(module, *r.model, train_set, r.recipe, ts);
  if (!rep.resumed.empty())
    row.notes.push_back(
        fmt::format("float baseline training resumed from {} at {}", ts.resume_path, rep.resumed));
  row.training = epochs_json(rep);
  module->to(torch::kCPU);
  save_checkpoint(ckpt, module,
                  {{"model", r.model_name},
                   {"identity", identity},
                   {"train_seconds", rep.seconds},
                   {"epochs", row.training}});
  fs::remove(ts.resume_path);
  row.notes.push_back(
      fmt::format("float baseline trained in {:.1f} s, cached as {}", rep.seconds, ckpt));
  return rep.seconds;
}

}  // namespace

Prepared prepare(const Resolved& r, SharedWork* shared, std::ostream& log) {
  r.backend->configure(r.backend_opts);
  Prepared p;
  p.engine = r.backend->constraints();
  if (!p.engine.warning.empty()) log << "warning: " << p.engine.warning << "\n";
  const Shape wanted = r.model->input_shape(native_shape(r.data_cfg), r.model_opts);
  p.data_key = stable_hash(nlohmann::json{{"dataset", r.config["dataset"]},
                                          {"shape", wanted},
                                          {"normalize", r.model->normalize_inputs()}}
                               .dump());
  p.data = dataset(r, wanted, p.data_key, shared, log);
  const DataInfo info{p.data.name, wanted, p.data.classes};
  p.graph = r.model->build(r.model_opts, info);
  refuse_unsupported_ops(*r.backend, r.backend_name, p.graph);
  log << fmt::format("model {}: {} parameters, {} MACs per sample\n", r.model_name,
                     p.graph.parameter_count(), p.graph.mac_count());
  return p;
}

FloatBaseline float_baseline(const Resolved& r, const RunSettings& settings, std::ostream& log) {
  FloatBaseline b;
  b.p = prepare(r, settings.shared.get(), log);
  seed_everything(r.recipe.seed);
  b.module = GraphModule(b.p.graph);
  b.config = r.config;
  b.config["quantizer"] = {{"name", "none"}};
  if (!b.p.data.fallback_reason.empty()) b.row.notes.push_back(b.p.data.fallback_reason);
  b.identity = baseline_identity(b.p, b.config);
  b.key = stable_hash(b.identity.dump());
  b.train_seconds =
      shared_baseline(b.module, r, b.p.data.train, b.identity, b.key, settings, b.row);
  b.module->eval();
  return b;
}

nlohmann::json baseline_identity(const Prepared& p, const nlohmann::json& config) {
  return {{"model", config["model"]},
          {"dataset", config["dataset"]},
          {"train", config["train"]},
          {"graph", p.graph.signature()},
          {"torch", kTorchVersion},
          {"data_used", p.data.name},
          {"checkpoint_format", kCheckpointFormat}};
}

double shared_baseline(GraphModule& module, const Resolved& r, const Dataset& train_set,
                       const nlohmann::json& identity, const std::string& key,
                       const RunSettings& settings, ResultRow& row) {
  SharedWork* shared = settings.shared.get();
  if (shared) {
    auto it = shared->state().baselines.find(key);
    if (it != shared->state().baselines.end()) {
      module = clone_module(it->second.module);
      row.training = it->second.training;
      row.notes.insert(row.notes.end(), it->second.notes.begin(), it->second.notes.end());
      return it->second.train_seconds;
    }
  }
  const std::size_t notes_before = row.notes.size();
  const double seconds = float_baseline(module, r, train_set, identity, key, settings, row);
  if (shared) {
    SharedBaseline b;
    b.module = clone_module(module);
    b.training = row.training;
    b.train_seconds = seconds;
    b.notes.assign(row.notes.begin() + static_cast<std::ptrdiff_t>(notes_before), row.notes.end());
    shared->state().baselines.emplace(key, std::move(b));
    ++shared->state().counts.baselines_made;
  }
  return seconds;
}

}  // namespace qlab
