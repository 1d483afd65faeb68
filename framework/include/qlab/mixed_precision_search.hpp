#pragma once
// The mixed-precision search of an experiment: its float baseline's layers
// ranked by sensitivity, then one weight width per layer chosen under each
// budget, each choice emitted as an NNI-style config list that the
// experiment's quantizer (or any other) takes. `qlab.mixed_precision` in Lua.
#include <qlab/experiment.hpp>
#include <qlab/quant/mixed_precision.hpp>
#include <qlab/registry.hpp>

#include <iosfwd>
#include <string>
#include <vector>

namespace qlab {

enum class BudgetKind {
  size_ratio,  ///< weight bits of the chosen layers / their fp32 bits
  bops_ratio,  ///< bit-operations (MACs x weight bits x input bits) / fp32's (x 32 x 32)
};

struct MixedPrecisionSpec {
  std::vector<int> bits{2, 4, 8};
  BudgetKind budget_kind = BudgetKind::size_ratio;
  std::vector<double> budgets;  ///< ratios, one candidate each
  SensitivityMethod method = SensitivityMethod::loss;
  bool greedy = false;
  std::int64_t samples = 512;  ///< calibration images the sensitivities are measured on
};

struct MixedPrecisionCandidate {
  double budget = 0;  ///< the ratio asked for
  double ratio = 0;   ///< the ratio chosen (at most budget)
  BitAllocation allocation;
  nlohmann::json config;  ///< the config list: one entry per set of widths
  std::string label;      ///< e.g. "mixed size<=0.15"
};

struct MixedPrecisionSearch {
  std::vector<LayerSensitivity> layers;
  std::vector<MixedPrecisionCandidate> candidates;
  std::string sensitivity_file;  ///< where the sensitivities are cached
  bool cached = false;           ///< read from there, not measured now
};

/// Runs the search on `base` (whose quantizer says which layers, their
/// activation widths and weight scales). The float baseline is trained or
/// read from settings.cache_dir as run_experiment would; the sensitivities
/// are cached beside it, keyed by the baseline and the method. With
/// `cached_only` (`qlab report`), a missing cache is an error, not work.
MixedPrecisionSearch search_mixed_precision(const Experiment& base, const Registry& registry,
                                            const MixedPrecisionSpec& spec,
                                            const RunSettings& settings, bool cached_only,
                                            std::ostream& log);

const char* to_string(SensitivityMethod method);
const char* to_string(BudgetKind kind);

}  // namespace qlab
