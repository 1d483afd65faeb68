// The experiment flow of DESIGN.md: config -> model graph -> float baseline
// (trained, or from the cache) -> backend -> metrics -> result rows.
// Everything a user can get wrong is checked (resolve.cpp) before any
// training starts.
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/quant/qmodel.hpp>
#include <qlab/runtime.hpp>
#include <qlab/samples.hpp>
#include <qlab/version.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include "experiment/baseline.hpp"
#include "experiment/measure.hpp"
#include "experiment/resolve.hpp"
#include "experiment/shared_work.hpp"
#include "experiment/stable_hash.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace qlab {
namespace {

namespace fs = std::filesystem;

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

nlohmann::json environment(const EngineConstraints& engine) {
  nlohmann::json env = {{"qlab", version()},
                        {"torch", kTorchVersion},
                        {"threads", threads()},
                        {"runtime", runtime_summary()},
                        {"engines", quantized_engines()},
                        {"cpu", cpu_model()},
                        {"host", host_name()}};
  if (!engine.int8_path.empty())
    env["int8"] = {{"path", engine.int8_path}, {"reduce_range", engine.reduce_range}};
  return env;
}

void note_not_applicable(const Measured& m, ResultRow& row) {
  for (const auto& name : m.not_applicable)
    row.notes.push_back(fmt::format("metric '{}' does not apply to this model or machine", name));
}

void note_float_layers(const QuantizedModel& qmodel, ResultRow& row) {
  if (qmodel.float_layers.empty()) {
    row.notes.push_back("every conv2d/linear layer is quantized");
    return;
  }
  std::string list;
  for (const auto& [layer, why] : qmodel.float_layers) {
    row.float_layers.push_back(layer);
    list += fmt::format("{}{} ({})", list.empty() ? "" : ", ", layer, why);
  }
  row.notes.push_back("layers left in float: " + list);
}

// The fp32 model's metrics (and reconstructions), measured, or (in a sweep)
// those an earlier point measured on the same data, baseline, backend and
// metrics. The random generator is left as measuring left it, so that what
// follows (a training-aware quantizer) draws the same numbers either way.
SharedFp32 fp32_measurement(const Resolved& r, const Prepared& p, const std::string& baseline,
                            Executable& exe, GraphModule module, SharedWork* shared) {
  const std::string key = stable_hash(nlohmann::json{
      {"baseline", baseline},
      {"data", p.data_key},
      {"backend", r.config["backend"]},
      {"metrics", r.config["metrics"]}}.dump());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  if (shared) {
    auto it = shared->state().fp32.find(key);
    if (it != shared->state().fp32.end()) {
      generator.set_state(it->second.rng_state);
      return it->second;
    }
  }
  const std::int64_t metric_batch = r.metric_opts.get<std::int64_t>("batch_size");
  RunContext ctx(*r.model, p.graph, exe, p.data.test, metric_batch, nullptr, module, nullptr);
  SharedFp32 fp;
  fp.measured = measure(r.metric_names, r.metrics, ctx);
  if (r.model->task() == Task::reconstruct)
    fp.samples = reconstruction_samples(exe, p.data.test, &module);
  fp.rng_state = generator.get_state();
  if (shared) {
    shared->state().fp32.emplace(key, fp);
    ++shared->state().counts.fp32_measured;
  }
  return fp;
}

}  // namespace

std::pair<std::shared_ptr<const QuantizedModel>, double> quantize_experiment(
    const Resolved& r, const Prepared& p, GraphModule module, const std::string& baseline,
    const RunSettings& settings, std::ostream& log) {
  QuantizeContext qctx;
  qctx.calibration = &p.data.train;
  qctx.batch_size = r.recipe.batch_size;
  qctx.engine = p.engine;
  qctx.config = r.quantizer_config;
  qctx.rules = r.quantizer_rules;
  qctx.model = r.model.get();
  qctx.recipe = r.recipe;
  qctx.training.device = r.backend->device();
  qctx.training.progress = settings.progress;
  if (settings.shared) {
    qctx.calibration_cache = &settings.shared->state().calibration;
    qctx.model_id = baseline + "|" + p.data_key;
  }
  const auto start = std::chrono::steady_clock::now();
  auto qmodel =
      std::make_shared<const QuantizedModel>(r.quantizer->quantize(module, r.quantizer_opts, qctx));
  if (!settings.save_quantized.empty()) {
    save_quantized(settings.save_quantized, *qmodel);
    log << "wrote the quantized model to " << settings.save_quantized << "\n";
  }
  return {qmodel, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

std::vector<ResultRow> run_experiment(const Experiment& ex, const Registry& registry,
                                      const RunSettings& settings, std::ostream& log) {
  // 1. Resolve every section against its schema before any work is done.
  return run_experiment(ex, plan_experiment(ex, registry), settings, log);
}

std::vector<ResultRow> run_experiment(const Experiment& ex, const ExperimentPlan& plan,
                                      const RunSettings& settings, std::ostream& log) {
  QLAB_CHECK(plan.resolved, "run_experiment: the plan has no resolution");
  const Resolved& r = *plan.resolved;
  require_available(r, ex);
  if (!r.quantizer && !settings.save_quantized.empty())
    throw Error("--save-quantized needs a [quantizer]; this experiment quantizes nothing");

  // 2. Backend, data and graph; 3. the float baseline.
  FloatBaseline fb = float_baseline(r, settings, log);
  const Prepared& p = fb.p;
  GraphModule module = fb.module;
  const nlohmann::json& config = fb.config;
  ResultRow row = std::move(fb.row);
  const std::string& baseline = fb.key;
  const double train_seconds = fb.train_seconds;

  // 4. Lower the float model onto the backend and measure it.
  const std::unique_ptr<Executable> exe = r.backend->lower(module);
  const SharedFp32 float_run =
      fp32_measurement(r, p, baseline, *exe, module, settings.shared.get());
  const Measured& fp = float_run.measured;
  row.samples = float_run.samples;
  row.metrics = fp.metrics;
  row.metrics["train_seconds"] = train_seconds;
  row.model = r.model_name;
  row.dataset = p.data.name;
  row.backend = r.backend_name;
  row.mode = fp.mode;
  row.config = config;
  row.graph = p.graph.print();
  row.environment = environment(p.engine);
  row.environment["executable"] = fp.executable;
  row.notes.push_back(p.data.normalization);
  note_not_applicable(fp, row);
  if (!r.quantizer) return {row};

  // 5. Quantize, lower the quantized model, measure it.
  // Not a structured binding: C++17 lambdas cannot capture one.
  const auto quantized = quantize_experiment(r, p, module, baseline, settings, log);
  const std::shared_ptr<const QuantizedModel> qmodel = quantized.first;
  const double quantize_seconds = quantized.second;
  const std::unique_ptr<Executable> qexe = r.backend->lower(qmodel);
  const std::int64_t metric_batch = r.metric_opts.get<std::int64_t>("batch_size");
  RunContext q_ctx(*r.model, qmodel->graph(), *qexe, p.data.test, metric_batch, qmodel.get(),
                   qmodel->float_module, exe.get());
  const Measured qm = measure(r.metric_names, r.metrics, q_ctx);
  ResultRow qrow = row;
  qrow.quantizer = r.quantizer_name;
  qrow.mode = qm.mode;
  qrow.metrics = qm.metrics;
  qrow.metrics["quantize_seconds"] = quantize_seconds;
  // Training-aware quantizers: their fine-tuning is this row's training.
  qrow.training = qmodel->training;
  if (qmodel->train_seconds > 0) qrow.metrics["train_seconds"] = qmodel->train_seconds;
  if (r.model->task() == Task::reconstruct)
    qrow.samples = reconstruction_samples(*qexe, p.data.test, nullptr);
  qrow.config["quantizer"] = r.config["quantizer"];
  qrow.calibration = qmodel->calibration_config();
  qrow.environment["executable"] = qm.executable;
  qrow.lowered = qexe->lowered();
  qrow.notes = {"runs on: " + qm.executable};
  if (qm.mode == Mode::int8) qrow.notes.push_back(qmodel->widths() + " on int8 kernels");
  if (!p.engine.warning.empty()) qrow.notes.push_back("warning: " + p.engine.warning);
  for (const auto& note : qmodel->notes) qrow.notes.push_back(note);
  note_not_applicable(qm, qrow);
  note_float_layers(*qmodel, qrow);
  return {row, qrow};
}

}  // namespace qlab
