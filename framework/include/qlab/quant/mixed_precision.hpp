#pragma once
// Mixed precision: how much each layer suffers at each weight width
// (sensitivity), and which width each layer gets under a budget
// (allocation). The search that ties them to an experiment and hands the
// result to a quantizer as a config list is qlab/mixed_precision_search.hpp.
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/model.hpp>
#include <qlab/quant/quant.hpp>

#include <map>
#include <string>
#include <vector>

namespace qlab {

/// One width a layer may take: what it costs (bits of weights, or
/// bit-operations) and what it is expected to lose.
struct WidthChoice {
  int bits = 8;
  double cost = 0;
  double sensitivity = 0;
};

struct LayerChoices {
  std::string layer;
  std::vector<WidthChoice> choices;
};

struct BitAllocation {
  std::map<std::string, int> bits;  ///< layer -> weight bits
  double cost = 0;                  ///< the sum of the chosen costs
  double sensitivity = 0;           ///< the sum of the chosen sensitivities
  /// Whether the minimum is exact: the costs were whole multiples of a unit
  /// small enough to enumerate. Otherwise they were rounded up to a coarser
  /// unit, which still respects the budget but may miss the optimum.
  bool exact = true;
};

/// The widths minimising the summed sensitivity with the summed cost at
/// most `budget`: a multiple-choice knapsack, solved by dynamic programming
/// over the cost in units of the costs' greatest common divisor (coarser
/// units, rounded up, when that would take too many states). `greedy`
/// instead starts every layer at its costliest width and repeatedly lowers
/// the layer that loses least per unit of cost saved, as HAQ's and NNCF's
/// simple baselines do. Throws qlab::Error when even the cheapest width of
/// every layer exceeds the budget.
BitAllocation allocate_bits(const std::vector<LayerChoices>& layers, double budget,
                            bool greedy = false);

enum class SensitivityMethod {
  /// The calibration loss's increase when only that layer's weights are
  /// quantized (everything else float), measured.
  loss,
  /// HAWQ-v2's estimate (Dong et al. 2020, arXiv 1911.03852): the mean of
  /// the Hessian's diagonal over the layer's weights, from Hutchinson's
  /// trace estimator, times the squared weight perturbation quantization
  /// causes, halved (the second-order term of the loss).
  hessian,
};

struct SensitivitySpec {
  std::vector<int> bits{2, 4, 8};
  SensitivityMethod method = SensitivityMethod::loss;
  bool per_channel = true;  ///< weight scales, as the quantizer will use them
  WeightRange weight_range = WeightRange::minmax;  ///< likewise
  bool narrow_range = false;                       ///< likewise
  std::int64_t batch_size = 64;                    ///< images per forward pass
  int hessian_probes = 8;                          ///< Rademacher vectors per layer (hessian)
};

struct LayerSensitivity {
  std::string layer;
  std::int64_t weights = 0;  ///< weight elements
  std::int64_t macs = 0;     ///< multiply-accumulates per sample
  std::map<int, double> by_bits;
};

/// The sensitivity of every layer in `layers` of `fused` (a fused float
/// model, batch norm folded) at every width of spec.bits, on `sample`.
std::vector<LayerSensitivity> layer_sensitivity(GraphModule fused, const Model& model,
                                                const Dataset& sample,
                                                const std::vector<std::string>& layers,
                                                const SensitivitySpec& spec);

}  // namespace qlab
