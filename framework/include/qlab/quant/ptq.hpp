#pragma once
// Post-training quantization, the shared machinery of the `dynamic` and
// `static` quantizer plugins: fuse, quantize weights, calibrate activations.
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/calibration_cache.hpp>
#include <qlab/quant/config_list.hpp>
#include <qlab/quant/qmodel.hpp>

namespace qlab {

struct PtqSpec {
  Scheme scheme = Scheme::static_;
  /// Which layers, which of their tensors, how many bits (config_list.hpp).
  std::vector<ConfigEntry> config = default_config_list({}, {8, 8, 8});
  ConfigRules rules;
  std::string config_key = "[quantizer] config";  ///< names the list in errors
  bool per_channel = true;                        ///< weights per output channel
  WeightRange weight_range = WeightRange::minmax;
  /// Static: weight scales then searched by each layer's output error
  /// (search_weight_ranges, ptq_methods.hpp), from `weight_range`'s.
  bool sequential_mse = false;
  /// Static: the logits' range chosen by cross-entropy (search_output_ranges).
  bool output_cross_entropy = false;
  bool narrow_range = false;        ///< weights on [-(2^(b-1) - 1), 2^(b-1) - 1] (weight_qparams)
  std::string observer = "minmax";  ///< static: activation observer (observer_kinds())
  double percentile = 99.99;        ///< for the percentile observer
  std::int64_t calibration_batches = 32;
  std::int64_t batch_size = 64;
  bool reduce_range = false;  ///< the engine needs 7-bit activations (applied at 8 bits)
  /// Cross-layer equalization of the fused model before quantizing (ptq_methods.hpp).
  bool equalize = false;
  /// Empirical bias correction after quantizing weights, on the calibration batches.
  bool bias_correction = false;
  /// Weight rounding: false rounds to nearest; true learns it (AdaRound).
  bool adaround = false;
  int adaround_iterations = 500;
  std::int64_t adaround_batches = 4;  ///< batches of batch_size images to fit on
  double adaround_weight = 0.01;      ///< the regulariser's weight
  /// Where calibrated observers are shared, and the float model's identity
  /// there (QuantizeContext's); no sharing when either is unset.
  CalibrationCache* cache = nullptr;
  std::string model_id;
};

/// A spec from what every post-training quantizer is given: the context's
/// config list, rules and engine constraints, the recipe's batch size, and
/// the `per_channel`, `weight_range` and `narrow_range` options where the
/// quantizer has them.
PtqSpec ptq_spec(Scheme scheme, const Options& options, const QuantizeContext& ctx);

/// The node whose output qparams `name`'s output carries: `name` itself, or
/// the node before a chain of ops that keep their input's qparams (op_info's
/// `own_grid` false: relu, pooling, flatten, dropout, as in PyTorch).
std::string qparams_source(const Graph& graph, std::string name);

/// The nodes of a fused graph whose outputs are quantized, with their bits:
/// each selected layer's output (its output bits), and the node that feeds
/// a selected layer's input (its input bits), found by walking back through
/// ops that keep their input's qparams.
std::map<std::string, int> activation_sites(const Graph& fused, const LayerSelection& selection);

/// Quantizes one layer's (fused) weight onto a `bits`-bit grid: symmetric,
/// per output channel or per tensor, by weight_qparams; 1 bit is binary.
QLayer quantize_weight(const torch::Tensor& weight, const torch::Tensor& bias, int bits,
                       bool per_channel, WeightRange range = WeightRange::minmax,
                       bool narrow = false);

/// Fuses `trained`, quantizes the weights of every selected layer and, for
/// the static scheme, calibrates activation qparams on `calibration`
/// batches (a fixed, seed-independent sample of them). Throws qlab::Error when
/// static quantization is asked for with no calibration batches.
QuantizedModel post_training_quantize(GraphModule trained, const PtqSpec& spec,
                                      const Dataset& calibration);

}  // namespace qlab
