// The experiment flow of DESIGN.md: config -> model graph -> float baseline
// (trained, or from the cache) -> backend -> metrics -> result rows.
// Everything a user can get wrong is checked before any training starts.
#include <qlab/checkpoint.hpp>
#include <qlab/data.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/qmodel.hpp>
#include <qlab/runtime.hpp>
#include <qlab/samples.hpp>
#include <qlab/trainer.hpp>
#include <qlab/version.hpp>

#include "stable_hash.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace qlab {
namespace {

std::string required_name(const RawSection& s, const std::string& fallback) {
  auto it = s.values.find("name");
  if (it == s.values.end()) {
    if (!fallback.empty()) return fallback;
    throw Error(fmt::format("{}: [{}] name is required (a plugin name; `qlab plugins` lists them)",
                            s.where.str(), s.name));
  }
  if (const auto* str = std::get_if<std::string>(&it->second.value)) return *str;
  throw Error(fmt::format("{}: [{}] name: expected string, found {}", it->second.where.str(),
                          s.name, describe(it->second.value)));
}

// Names of the file a user-facing error came from, then the plugin's own words.
std::string at(const RawSection& s, const std::string& key) {
  auto it = s.values.find(key);
  return (it != s.values.end() ? it->second.where : s.where).str();
}

Schema metrics_schema() {
  Schema s;
  s.string_list("names", {"accuracy", "loss"}, "metric plugins to run, in order")
      .integer("batch_size", 64, "batch size for latency and memory", 1, 1 << 16);
  return s;
}

class Context : public MeasureContext {
 public:
  Context(const Model& model, const Graph& graph, Executable& exe, const Dataset& test,
          std::int64_t batch, const QuantizedModel* quantized, GraphModule float_module,
          Executable* reference)
      : model_(model),
        graph_(graph),
        exe_(exe),
        test_(test),
        batch_(batch),
        quantized_(quantized),
        float_module_(std::move(float_module)),
        reference_(reference) {}
  Executable* reference() override { return reference_; }
  const QuantizedModel* quantized() const override { return quantized_; }
  GraphModule float_module() const override { return float_module_; }
  const Model& model() const override { return model_; }
  const Graph& graph() const override { return graph_; }
  Executable& executable() override { return exe_; }
  const Dataset& test_set() const override { return test_; }
  std::int64_t batch_size() const override { return batch_; }
  const std::vector<torch::Tensor>& test_outputs() override {
    if (outputs_.empty()) {
      // Seeded, so that a stochastic model (a VAE samples its latent code)
      // sees the same noise in every row: rows compare like with like.
      torch::manual_seed(0);
      constexpr std::int64_t kChunk = 1000;
      std::vector<std::vector<torch::Tensor>> parts;
      for (std::int64_t i = 0; i < test_.size(); i += kChunk) {
        auto out = exe_.run(test_.images.slice(0, i, std::min(test_.size(), i + kChunk)));
        if (parts.empty()) parts.resize(out.size());
        for (std::size_t k = 0; k < out.size(); ++k) parts[k].push_back(out[k]);
      }
      for (auto& p : parts) outputs_.push_back(torch::cat(p));
    }
    return outputs_;
  }

 private:
  const Model& model_;
  const Graph& graph_;
  Executable& exe_;
  const Dataset& test_;
  std::int64_t batch_;
  const QuantizedModel* quantized_;
  GraphModule float_module_;
  Executable* reference_;
  std::vector<torch::Tensor> outputs_;
};

struct Measured {
  MetricValues metrics;
  Mode mode;
  std::string executable;
  std::vector<std::string> not_applicable;  ///< metrics that wrote none of their keys
};

// Runs every metric on one lowered model.
Measured measure(const Registry& registry, const std::vector<std::string>& metric_names,
                 const std::vector<std::shared_ptr<Metric>>& metrics, Context& ctx) {
  Measured m;
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const auto& rec = registry.record(PluginKind::metric, metric_names[i]);
    const auto before = m.metrics.size();
    plugin_call(rec, "measure", [&] { metrics[i]->measure(ctx, m.metrics); });
    if (m.metrics.size() == before) m.not_applicable.push_back(metric_names[i]);
  }
  m.mode = ctx.executable().mode();
  m.executable = ctx.executable().describe();
  return m;
}

// Every section checked against its schema, and the plugins it names.
struct Resolved {
  std::string model_name;
  std::shared_ptr<Model> model;
  const PluginRecord* model_rec = nullptr;
  Options model_opts, data_opts, train_opts, quantizer_opts, backend_opts, metric_opts;
  DatasetConfig data_cfg;
  TrainRecipe recipe;
  std::string quantizer_name;
  std::shared_ptr<Quantizer> quantizer;
  std::string backend_name;
  std::shared_ptr<Backend> backend;
  const PluginRecord* backend_rec = nullptr;
  Availability availability;
  std::vector<std::string> metric_names;
  std::vector<std::shared_ptr<Metric>> metrics;
  nlohmann::json config;  ///< resolved options of every section, names included
};

Resolved resolve_experiment(const Experiment& ex, const Registry& registry) {
  Resolved r;
  r.model_name = required_name(ex.model, "");
  try {
    r.model = registry.model(r.model_name);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: [model] name: {}", at(ex.model, "name"), e.what()));
  }
  r.model_rec = &registry.record(PluginKind::model, r.model_name);
  r.model_opts = resolve(plugin_call(*r.model_rec, "options", [&] { return r.model->options(); }),
                         ex.model, {"name"});

  Schema data_schema = dataset_schema();
  data_schema.string("name", "fashion-mnist", "dataset",
                     {"fashion-mnist", "mnist", "cifar10", "cifar100"});
  r.data_opts = resolve(data_schema, ex.dataset);
  r.data_cfg = dataset_config(r.data_opts);
  r.data_cfg.name = r.data_opts.get<std::string>("name");

  const TrainRecipe defaults =
      plugin_call(*r.model_rec, "default_recipe", [&] { return r.model->default_recipe(); });
  r.train_opts = resolve(recipe_schema(defaults), ex.train);
  r.recipe = recipe_from(r.train_opts);

  r.quantizer_name = required_name(ex.quantizer, "none");
  if (r.quantizer_name != "none") {
    try {
      r.quantizer = registry.quantizer(r.quantizer_name);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: [quantizer] name: {}", at(ex.quantizer, "name"), e.what()));
    }
    const auto& rec = registry.record(PluginKind::quantizer, r.quantizer_name);
    r.quantizer_opts = resolve(plugin_call(rec, "options", [&] { return r.quantizer->options(); }),
                               ex.quantizer, {"name"});
    try {
      plugin_call(rec, "validate", [&] { r.quantizer->validate(r.quantizer_opts); });
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", at(ex.quantizer, "config"), e.what()));
    }
  } else if (ex.quantizer.values.size() > ex.quantizer.values.count("name")) {
    throw Error(
        fmt::format("{}: [quantizer] has options but no quantizer name (or name = \"none\")",
                    ex.quantizer.where.str()));
  }

  r.backend_name = required_name(ex.backend, "cpu");
  try {
    r.backend = registry.backend(r.backend_name);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: [backend] name: {}", at(ex.backend, "name"), e.what()));
  }
  r.backend_rec = &registry.record(PluginKind::backend, r.backend_name);
  r.backend_opts =
      resolve(plugin_call(*r.backend_rec, "options", [&] { return r.backend->options(); }),
              ex.backend, {"name"});
  r.availability =
      plugin_call(*r.backend_rec, "availability", [&] { return r.backend->availability(); });

  r.metric_opts = resolve(metrics_schema(), ex.metrics);
  r.metric_names = r.metric_opts.get<std::vector<std::string>>("names");
  for (const auto& name : r.metric_names) {
    try {
      r.metrics.push_back(registry.metric(name));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: [metrics] names: {}", at(ex.metrics, "names"), e.what()));
    }
  }

  r.config = {{"model", r.model_opts.to_json()},     {"dataset", r.data_opts.to_json()},
              {"train", r.train_opts.to_json()},     {"quantizer", r.quantizer_opts.to_json()},
              {"backend", r.backend_opts.to_json()}, {"metrics", r.metric_opts.to_json()}};
  r.config["model"]["name"] = r.model_name;
  r.config["quantizer"]["name"] = r.quantizer_name;
  r.config["backend"]["name"] = r.backend_name;
  return r;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

}  // namespace

ExperimentPlan plan_experiment(const Experiment& experiment, const Registry& registry) {
  Resolved r = resolve_experiment(experiment, registry);
  ExperimentPlan plan;
  plan.hash = stable_hash(r.config.dump());
  plan.config = std::move(r.config);
  if (!r.availability.available)
    plan.unavailable =
        fmt::format("backend '{}' is unavailable: {}", r.backend_name, r.availability.reason);
  return plan;
}

std::vector<ResultRow> run_experiment(const Experiment& ex, const Registry& registry,
                                      const RunSettings& settings, std::ostream& log) {
  // 1. Resolve every section against its schema before any work is done.
  Resolved r = resolve_experiment(ex, registry);
  if (!r.availability.available)
    throw Error(fmt::format("{}: [backend] name: backend '{}' is unavailable: {}",
                            at(ex.backend, "name"), r.backend_name, r.availability.reason));
  if (!r.quantizer && !settings.save_quantized.empty())
    throw Error("--save-quantized needs a [quantizer]; this experiment quantizes nothing");

  // 2. Data and graph.
  plugin_call(*r.backend_rec, "configure", [&] { r.backend->configure(r.backend_opts); });
  const EngineConstraints engine =
      plugin_call(*r.backend_rec, "constraints", [&] { return r.backend->constraints(); });
  if (!engine.warning.empty()) log << "warning: " << engine.warning << "\n";
  const Shape wanted = plugin_call(*r.model_rec, "input_shape", [&] {
    return r.model->input_shape(native_shape(r.data_cfg), r.model_opts);
  });
  const bool normalize =
      plugin_call(*r.model_rec, "normalize_inputs", [&] { return r.model->normalize_inputs(); });
  DataSplits data = load_dataset(r.data_cfg, wanted, normalize);
  log << fmt::format("dataset {}: {} train / {} test samples from {}\n", data.name,
                     data.train.size(), data.test.size(), data.source);
  if (!data.fallback_reason.empty()) log << "note: " << data.fallback_reason << "\n";
  const DataInfo info{data.name, wanted, data.classes};
  const Graph graph =
      plugin_call(*r.model_rec, "build", [&] { return r.model->build(r.model_opts, info); });
  seed_everything(r.recipe.seed);
  GraphModule module(graph);
  log << fmt::format("model {}: {} parameters, {} MACs per sample\n", r.model_name,
                     graph.parameter_count(), graph.mac_count());

  // 3. The float baseline, cached by everything that determines it.
  nlohmann::json config = r.config;
  config["quantizer"] = {{"name", "none"}};
  const nlohmann::json identity = {{"model", config["model"]},
                                   {"dataset", config["dataset"]},
                                   {"train", config["train"]},
                                   {"graph", graph.signature()},
                                   {"torch", kTorchVersion},
                                   {"data_used", data.name},
                                   {"checkpoint_format", kCheckpointFormat}};
  const std::string key = stable_hash(identity.dump());
  const std::string ckpt =
      (std::filesystem::path(settings.cache_dir) / fmt::format("{}-{}.pt", r.model_name, key))
          .string();
  ResultRow row;
  if (!data.fallback_reason.empty()) row.notes.push_back(data.fallback_reason);
  double train_seconds = 0;
  if (settings.use_cache && std::filesystem::exists(ckpt)) {
    const auto meta = load_checkpoint(ckpt, module);
    train_seconds = meta.value("train_seconds", 0.0);
    row.training = meta.value("epochs", nlohmann::json::array());
    row.notes.push_back("float baseline loaded from cache " + ckpt);
  } else {
    TrainSettings ts;
    ts.device = r.backend->device();
    ts.progress = settings.progress;
    ts.label = r.model_name + " ";
    // Training keeps its own checkpoint beside the cached one: Ctrl-C, or a
    // NaN after some good epochs, loses at most the epoch in progress.
    ts.resume_path = (std::filesystem::path(settings.cache_dir) /
                      fmt::format("{}-{}.resume.pt", r.model_name, key))
                         .string();
    if (!settings.use_cache) std::filesystem::remove(ts.resume_path);
    const TrainReport rep = train(module, *r.model, data.train, r.recipe, ts);
    if (!rep.resumed.empty())
      row.notes.push_back(fmt::format("float baseline training resumed from {} at {}",
                                      ts.resume_path, rep.resumed));
    train_seconds = rep.seconds;
    const nlohmann::json epochs = epochs_json(rep);
    row.training = epochs;
    module->to(torch::kCPU);
    save_checkpoint(ckpt, module,
                    {{"model", r.model_name},
                     {"identity", identity},
                     {"train_seconds", rep.seconds},
                     {"epochs", epochs}});
    std::filesystem::remove(ts.resume_path);
    row.notes.push_back(
        fmt::format("float baseline trained in {:.1f} s, cached as {}", rep.seconds, ckpt));
  }
  module->eval();

  // 4. Lower the float model onto the backend and measure it.
  const std::int64_t metric_batch = r.metric_opts.get<std::int64_t>("batch_size");
  nlohmann::json environment = {{"qlab", version()},
                                {"torch", kTorchVersion},
                                {"threads", threads()},
                                {"runtime", runtime_summary()},
                                {"engines", quantized_engines()},
                                {"cpu", cpu_model()},
                                {"host", host_name()}};
  if (!engine.int8_path.empty())
    environment["int8"] = {{"path", engine.int8_path}, {"reduce_range", engine.reduce_range}};
  auto exe = adopt(r.backend,
                   plugin_call(*r.backend_rec, "lower", [&] { return r.backend->lower(module); }));
  Context float_ctx(*r.model, graph, *exe, data.test, metric_batch, nullptr, module, nullptr);
  const Measured fp = measure(registry, r.metric_names, r.metrics, float_ctx);
  const bool reconstructs =
      plugin_call(*r.model_rec, "task", [&] { return r.model->task(); }) == Task::reconstruct;
  if (reconstructs) row.samples = reconstruction_samples(*exe, data.test, &module);
  row.metrics = fp.metrics;
  row.metrics["train_seconds"] = train_seconds;
  row.model = r.model_name;
  row.dataset = data.name;
  row.backend = r.backend_name;
  row.mode = fp.mode;
  row.config = config;
  row.graph = graph.print();
  row.environment = environment;
  row.environment["executable"] = fp.executable;
  for (const auto& name : fp.not_applicable)
    row.notes.push_back(fmt::format("metric '{}' does not apply to this model or machine", name));
  if (!r.quantizer) return {row};

  // 5. Quantize, lower the quantized model, measure it.
  const auto& qrec = registry.record(PluginKind::quantizer, r.quantizer_name);
  QuantizeContext qctx;
  qctx.calibration = &data.train;
  qctx.batch_size = r.recipe.batch_size;
  qctx.engine = engine;
  qctx.model = r.model.get();
  qctx.recipe = r.recipe;
  qctx.training.device = r.backend->device();
  qctx.training.progress = settings.progress;
  const auto q0 = std::chrono::steady_clock::now();
  auto qmodel = std::make_shared<const QuantizedModel>(plugin_call(
      qrec, "quantize", [&] { return r.quantizer->quantize(module, r.quantizer_opts, qctx); }));
  if (!settings.save_quantized.empty()) {
    save_quantized(settings.save_quantized, *qmodel);
    log << "wrote the quantized model to " << settings.save_quantized << "\n";
  }
  const double quantize_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - q0).count();
  auto qexe = adopt(r.backend,
                    plugin_call(*r.backend_rec, "lower", [&] { return r.backend->lower(qmodel); }));
  Context q_ctx(*r.model, qmodel->graph(), *qexe, data.test, metric_batch, qmodel.get(),
                qmodel->float_module, exe.get());
  const Measured qm = measure(registry, r.metric_names, r.metrics, q_ctx);
  ResultRow qrow = row;
  qrow.quantizer = r.quantizer_name;
  qrow.mode = qm.mode;
  qrow.metrics = qm.metrics;
  qrow.metrics["quantize_seconds"] = quantize_seconds;
  // Training-aware quantizers: their fine-tuning is this row's training.
  qrow.training = qmodel->training;
  if (qmodel->train_seconds > 0) qrow.metrics["train_seconds"] = qmodel->train_seconds;
  if (reconstructs) qrow.samples = reconstruction_samples(*qexe, data.test, nullptr);
  qrow.config["quantizer"] = r.config["quantizer"];
  qrow.calibration = qmodel->calibration_config();
  qrow.environment["executable"] = qm.executable;
  qrow.lowered = qexe->lowered();
  qrow.notes.clear();
  qrow.notes.push_back("runs on: " + qm.executable);
  if (!engine.warning.empty()) qrow.notes.push_back("warning: " + engine.warning);
  for (const auto& note : qmodel->notes) qrow.notes.push_back(note);
  for (const auto& name : qm.not_applicable)
    qrow.notes.push_back(fmt::format("metric '{}' does not apply to this model or machine", name));
  if (qmodel->float_layers.empty()) {
    qrow.notes.push_back("every conv2d/linear layer is quantized");
  } else {
    std::string list;
    for (const auto& [layer, why] : qmodel->float_layers) {
      qrow.float_layers.push_back(layer);
      list += fmt::format("{}{} ({})", list.empty() ? "" : ", ", layer, why);
    }
    qrow.notes.push_back("layers left in float: " + list);
  }
  return {row, qrow};
}

}  // namespace qlab
