#pragma once
// An experiment: the sections of a TOML file (or, later, a Lua table), and
// the flow that turns it into result rows.
#include <qlab/plugin/options.hpp>
#include <qlab/registry.hpp>
#include <qlab/result.hpp>
#include <qlab/shared_work.hpp>

#include <iosfwd>
#include <memory>
#include <string>

namespace qlab {

struct Experiment {
  std::string source;  ///< file name, for messages
  RawSection model, dataset, train, quantizer, backend, metrics;
};

/// Parses an experiment file; throws qlab::Error with file:line:column on
/// syntax errors, unknown sections and values that are not plain values.
Experiment load_experiment(const std::string& path);
Experiment parse_experiment(const std::string& text, const std::string& source);
/// The experiment as a TOML file that parses back to the same sections.
std::string to_toml(const Experiment& experiment);

/// What identifies a sweep point: the resolved options of every section
/// (defaults filled in, plugin names included) and their hash.
struct Resolved;

struct ExperimentPlan {
  nlohmann::json config;
  std::string hash;
  std::string unavailable;  ///< why the backend cannot run here; empty if it can
  /// The checked sections and their plugins, which run_experiment starts from.
  std::shared_ptr<Resolved> resolved;
};

/// Validates like run_experiment, without loading data or training.
ExperimentPlan plan_experiment(const Experiment& experiment, const Registry& registry);

struct RunSettings {
  std::string cache_dir = ".qlab/cache";  ///< float baselines by config hash
  bool use_cache = true;
  bool progress = true;
  std::string save_quantized;  ///< if set, write the quantized model here
  /// Set by a sweep: data, baselines, fp32 measurements and calibrations its
  /// points share (shared_work.hpp). Null: the run does everything itself.
  std::shared_ptr<SharedWork> shared;
};

/// Runs the experiment: float baseline (trained or from the cache), then the
/// backend and metrics. Messages go to `log`.
std::vector<ResultRow> run_experiment(const Experiment& experiment, const Registry& registry,
                                      const RunSettings& settings, std::ostream& log);
/// The same from a plan of `experiment`, which is not resolved again (a
/// sweep plans every point before it runs one). A plan runs once.
std::vector<ResultRow> run_experiment(const Experiment& experiment, const ExperimentPlan& plan,
                                      const RunSettings& settings, std::ostream& log);

/// Writes the experiment's float baseline, trained or from the cache as
/// run_experiment gets it, to `out` as a safetensors file under PyTorch's
/// names, qlab's metadata under "__metadata__". Returns notes.
std::vector<std::string> export_float_weights(const Experiment& experiment,
                                              const Registry& registry, const RunSettings& settings,
                                              const std::string& out, std::ostream& log);

/// Writes the experiment's model to `out` as ONNX (opset 13): quantized, as
/// QDQ, when the experiment has a (static, int8-runnable) quantizer, else
/// the float baseline. Checked by ONNX's checker first. `reference`, if set,
/// gets a safetensors file to check a runtime against: "input" (the test
/// images as the model takes them), "label", and "output", the model's
/// outputs on the experiment's backend (metadata: "output_scale", the
/// output grid's step, 0 when the output is float). Returns notes.
std::vector<std::string> export_onnx(const Experiment& experiment, const Registry& registry,
                                     const RunSettings& settings, const std::string& out,
                                     const std::string& reference, std::ostream& log);

}  // namespace qlab
