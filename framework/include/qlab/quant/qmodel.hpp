#pragma once
// A quantized model as quantizers produce it and backends lower it: the
// fused graph, integer weights with their qparams, and the activation
// qparams found by calibration. It names every conv/linear left in float.
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/graph.hpp>
#include <qlab/quant/quant.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace qlab {

/// One conv2d or linear node with quantized weights.
struct QLayer {
  QParams weight;           ///< per channel along axis 0, or per tensor
  torch::Tensor codes;      ///< int64 integer weights on weight's grid, the weight's shape
  torch::Tensor bias;       ///< float, or undefined
  int activation_bits = 8;  ///< dynamic: bits of the per-batch input quantization (0: none)
};

/// When activations get their qparams: fixed once by calibration (static),
/// or computed from each batch at run time (dynamic). `static` is a keyword.
enum class Scheme { static_, dynamic };
/// "static" or "dynamic", as checkpoints and reports spell it.
const char* to_string(Scheme scheme);

struct QuantizedModel {
  Scheme scheme = Scheme::static_;
  GraphModule float_module{nullptr};     ///< the fused float model; its graph is the one lowered
  std::map<std::string, QLayer> layers;  ///< quantized conv2d/linear nodes by name
  std::map<std::string, QParams> activations;       ///< static: qparams of node outputs
  std::map<std::string, std::string> float_layers;  ///< conv2d/linear left in float -> why
  /// Training-aware quantizers: the fine-tuning epochs (as result rows hold
  /// them) and their wall time; empty and 0 for post-training ones.
  nlohmann::json training = nlohmann::json::array();
  double train_seconds = 0;
  /// What a result must say about how this model was made.
  std::vector<std::string> notes;

  const Graph& graph() const { return float_module->graph(); }
  /// The grid node `name`'s output is on: its own, or that of the node
  /// whose grid it passes on (a relu, pool or flatten); null where it stays
  /// float.
  const QParams* output_grid(const std::string& name) const;
  /// The grid reaching node `name`'s (first) input: a layer's input grid;
  /// null where it stays float.
  const QParams* input_grid(const std::string& name) const;
  /// Why the model cannot run on int8 kernels, per layer or activation
  /// (empty: it can). Every uniform grid of 1 to 8 bits embeds in int8
  /// exactly: b-bit codes are int8 codes of the same scale, binary weights
  /// {-a, +a} are the codes {-1, +1}, and DoReFa's half-step grid is the odd
  /// codes at half the scale (up to 7 bits). What is left simulated: grids
  /// wider than 8 bits, 8-bit DoReFa weights, a quantized layer whose input
  /// or output stays float, and dynamic activations of other than 8 bits
  /// (LibTorch's dynamic kernels quantize each batch to 8).
  std::map<std::string, std::string> int8_blockers() const;
  /// Whether it has quantized layers and int8_blockers() is empty.
  bool int8() const;
  /// The weight and activation bits of its quantized layers, counted:
  /// "W4A4 x5", or "W8A8 x3, W2A8 x1" for a mixed list (A: a layer's input;
  /// for dynamic quantization, the per-batch bits).
  std::string widths() const;
  /// Per-layer weight and activation bits, scale, zero point and tracked
  /// range: seed 001's calibration_config table.
  nlohmann::json calibration_config() const;
  /// The float weights the quantized layers stand for (dequantized codes).
  GraphModule dequantized_module() const;
};

/// A quantized layer's weight as int8 codes of one scale per channel (or
/// one), as int8 kernels and ONNX's DequantizeLinear take it: binary
/// {-a, +a} as {-1, +1} at scale a, DoReFa's half-step grid as the odd codes
/// at half the scale, other grids as they are (zero point 0). Only for a
/// layer that int8_blockers() does not name.
struct Int8Codes {
  torch::Tensor codes;  ///< int8, the weight's shape
  torch::Tensor scale;  ///< float64, one per channel along the weight's axis, or one
};
Int8Codes int8_codes(const QLayer& layer);

/// A static layer's bias as int32 codes on the scale s_in * s_w (s_w from
/// int8_codes), as ONNX QDQ, QNNPACK and FBGEMM add it before requantizing.
/// Every int8 kernel qlab runs adds this bias, so a model computes the same
/// codes on every engine and in the ONNX file it exports. `values()` is the
/// same bias in float, for kernels that take a float bias (oneDNN's).
struct Int32Bias {
  torch::Tensor codes;  ///< int32, one per output channel
  torch::Tensor scale;  ///< float32, one per channel (or one): s_in * s_w
  torch::Tensor values() const;
};
Int32Bias int32_bias(const QLayer& layer, double input_scale);

/// Writes the model as it would ship: bit-packed integer weights, qparams,
/// float biases and float layers, with a qlab header. Returns the bytes.
std::string serialize_quantized(const QuantizedModel& model);
void save_quantized(const std::string& path, const QuantizedModel& model);
/// Loads a quantized checkpoint; `fused` must be the architecture it was
/// written for (the same model, fused). Errors name the file.
QuantizedModel load_quantized(const std::string& path, const Graph& fused);

/// Bytes of the float model as it would ship (serialized parameters and buffers).
std::int64_t serialized_float_bytes(GraphModule module);

/// Runs the quantized model with fake quantization in float: the reference
/// that int8 kernels are checked against, and how other bit widths run.
std::vector<torch::Tensor> simulate(const QuantizedModel& model, GraphModule dequantized,
                                    const torch::Tensor& input);

}  // namespace qlab
