#pragma once
// The float baseline every experiment starts from (baseline.cpp), for
// run_experiment and for the searches that need the trained model without
// quantizing it (mixed precision).
#include <qlab/experiment.hpp>

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

}  // namespace qlab
