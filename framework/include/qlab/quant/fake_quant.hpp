#pragma once
// Fake quantizers that train with the model: QAT's observed min/max, DoReFa's
// tanh-normalised weights (arXiv 1606.06160), and LSQ's learned step sizes
// (arXiv 1902.08153). Each knows how to hand its trained grid to an int8 or
// simulated model (QLayer, QParams).
#include <qlab/quant/qmodel.hpp>

#include <memory>
#include <string>
#include <vector>

namespace qlab {

/// Fake quantization of one layer's weight while training.
class WeightFakeQuant {
 public:
  virtual ~WeightFakeQuant() = default;
  /// The weight the layer computes with; gradients reach `w`.
  virtual torch::Tensor forward(const torch::Tensor& w) = 0;
  /// The quantized layer whose dequantized weight is forward(w).
  virtual QLayer convert(const torch::Tensor& w, const torch::Tensor& bias) const = 0;
  /// Tensors the optimizer trains besides the model's (LSQ's step).
  virtual std::vector<torch::Tensor> parameters() { return {}; }
};

/// Fake quantization of one node's output while training.
class ActivationFakeQuant {
 public:
  virtual ~ActivationFakeQuant() = default;
  virtual torch::Tensor forward(const torch::Tensor& x, bool training) = 0;
  /// The grid the converted model quantizes this output onto.
  virtual QParams qparams() const = 0;
  /// Stops range tracking (QAT's observers); a no-op for learned grids.
  virtual void freeze() {}
  virtual std::vector<torch::Tensor> parameters() { return {}; }
};

// --- QAT: ranges tracked by observers, straight-through gradients ---------

/// Symmetric grid from the weight's current min/max (per output channel or
/// per tensor); 1 bit is binary.
std::unique_ptr<WeightFakeQuant> minmax_weight(int bits, bool per_channel);
/// Affine grid from a moving-average min/max observer (PyTorch's default
/// for QAT activations); `reduce_range` at 8 bits for engines that need it.
std::unique_ptr<ActivationFakeQuant> observed_activation(int bits, bool reduce_range);

// --- DoReFa ----------------------------------------------------------------

/// DoReFa's k-bit weight: 2·quantize_k(tanh(w) / (2·max|tanh(w)|) + 1/2) − 1,
/// a uniform grid of 2^k levels on [−1, 1]; for k = 1, sign(w)·mean|w|.
/// Straight-through: the gradient flows through tanh, not through rounding.
torch::Tensor dorefa_weight(const torch::Tensor& w, int bits);
/// DoReFa's k-bit activation: quantize_k(clamp(x, 0, 1)), straight-through
/// inside [0, 1].
torch::Tensor dorefa_activation(const torch::Tensor& x, int bits);
/// DoReFa weights times a fixed per-layer scale (the float weight's max |w|
/// when `keep_scale`, so that a layer's outputs keep their magnitude; 1
/// otherwise, as in the paper, where batch norm absorbs it). Converted
/// exactly, with a zero point of -1/2 (the grid has no level at 0), so
/// never onto int8 kernels.
std::unique_ptr<WeightFakeQuant> dorefa_weight_quant(int bits, const torch::Tensor& initial,
                                                     bool keep_scale);
std::unique_ptr<ActivationFakeQuant> dorefa_activation_quant(int bits);

// --- LSQ -------------------------------------------------------------------

/// LSQ's fake quantization: clamp(round(x / s), qmin, qmax) · s with a
/// straight-through gradient for x and the paper's step gradient for s,
/// scaled by `grad_scale` (1 / sqrt(N · qmax)).
torch::Tensor lsq_fake_quantize(const torch::Tensor& x, const torch::Tensor& step,
                                std::int64_t qmin, std::int64_t qmax, double grad_scale);
/// LSQ's step initialisation: 2 · mean|v| / sqrt(qmax).
double lsq_initial_step(const torch::Tensor& v, std::int64_t qmax);
/// Per-tensor learned step on the signed grid [−2^(b−1), 2^(b−1) − 1].
std::unique_ptr<WeightFakeQuant> lsq_weight(int bits, const torch::Tensor& initial);
/// Learned step on [0, 2^b − 1] (or the signed grid when the first batch
/// seen has negative values), initialised from that batch; `reduce_range`
/// drops a bit at 8 bits, for engines that need it.
std::unique_ptr<ActivationFakeQuant> lsq_activation(int bits, bool reduce_range);

}  // namespace qlab
