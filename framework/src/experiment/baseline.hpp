#pragma once
// The float baseline every experiment starts from (baseline.cpp), for
// run_experiment and for the searches that need the trained model without
// quantizing it (mixed precision).
#include <qlab/experiment.hpp>
#include <qlab/quant/qmodel.hpp>

#include "experiment/resolve.hpp"

#include <iosfwd>
#include <string>

namespace qlab {

class SharedWork;

/// What the run works on once the sections are resolved: the backend set up,
/// the data loaded, the model's graph built.
struct Prepared {
  EngineConstraints engine;
  DataSplits data;
  std::string data_key;  ///< what the data depends on
  Graph graph;
};

/// Configures the backend, loads (or shares) the data and builds the graph;
/// refuses a graph with an op the backend cannot run even in fp32.
Prepared prepare(const Resolved& r, SharedWork* shared, std::ostream& log);

/// Everything a float baseline's training depends on; its hash names it.
nlohmann::json baseline_identity(const Prepared& p, const nlohmann::json& config);

/// The float baseline in `module`: trained, or from the cache when everything
/// that determines it is there, or (in a sweep) a copy of the one an earlier
/// point made. Fills the row's training curve and notes; returns the
/// training time.
double shared_baseline(GraphModule& module, const Resolved& r, const Dataset& train_set,
                       const nlohmann::json& identity, const std::string& key,
                       const RunSettings& settings, ResultRow& row);

/// The first steps of every experiment, and all of an export's: prepare,
/// then the float baseline (shared_baseline), in eval mode.
struct FloatBaseline {
  Prepared p;
  GraphModule module{nullptr};
  nlohmann::json config;    ///< the experiment's config without its quantizer
  nlohmann::json identity;  ///< baseline_identity
  std::string key;          ///< the identity's hash
  ResultRow row;            ///< the training curve and notes
  double train_seconds = 0;
};
FloatBaseline float_baseline(const Resolved& r, const RunSettings& settings, std::ostream& log);

/// The experiment's quantizer applied to the trained float `module`
/// (written to settings.save_quantized when set); returns the model and the
/// seconds it took.
std::pair<std::shared_ptr<const QuantizedModel>, double> quantize_experiment(
    const Resolved& r, const Prepared& p, GraphModule module, const std::string& baseline,
    const RunSettings& settings, std::ostream& log);

}  // namespace qlab
