#pragma once
// An experiment checked against every schema, with the plugins it names:
// what run_experiment and plan_experiment both start from. Everything a
// user can get wrong is found here, before any data is loaded.
#include <qlab/experiment.hpp>
#include <qlab/registry.hpp>

#include <memory>
#include <string>
#include <vector>

namespace qlab {

struct Resolved {
  std::string model_name;
  std::string weights;  ///< [model] weights: a file of trained float weights, or empty
  /// Its bytes, read once: what the identity hashes is what is loaded, even
  /// when the file changes between a sweep's planning and its point's run.
  std::shared_ptr<const std::string> weights_bytes;
  // The plugins, behind the plugin boundary (Registry).
  std::shared_ptr<Model> model;
  Options model_opts, data_opts, train_opts, quantizer_opts, backend_opts, metric_opts;
  DatasetConfig data_cfg;
  TrainRecipe recipe;
  std::string quantizer_name;
  std::shared_ptr<Quantizer> quantizer;
  ConfigRules quantizer_rules;                ///< its caps().rules
  std::vector<ConfigEntry> quantizer_config;  ///< its config list, parsed once, here
  std::string backend_name;
  std::shared_ptr<Backend> backend;
  Availability availability;
  std::vector<std::string> metric_names;
  std::vector<std::shared_ptr<Metric>> metrics;
  nlohmann::json config;  ///< resolved options of every section, names included
};

Resolved resolve_experiment(const Experiment& ex, const Registry& registry);

/// Where `key` of section `s` was written (file:line:column), or the
/// section's header when the key is absent: the start of a user's error.
std::string at(const RawSection& s, const std::string& key);

/// Throws qlab::Error, naming [backend] name's line, when the backend cannot
/// run on this build or machine.
void require_available(const Resolved& r, const Experiment& ex);

}  // namespace qlab
