#pragma once
// The quantization core: quantization parameters, fake quantization with a
// straight-through gradient, bit packing, and observers. Shared by every
// quantizer plugin; none of it calls a quantized kernel.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace qlab {

/// How one tensor is quantized.
///  - affine: unsigned grid [0, 2^bits - 1] with a zero point (activations);
///  - symmetric: signed grid [-2^(bits-1), 2^(bits-1) - 1], zero point 0 (weights);
///  - 1 bit symmetric is binary, {-alpha, +alpha} with alpha = mean |x| (per
///    channel), not a symmetric grid whose top level is 0 (weights);
///  - 1 bit affine is the two levels {min, max} of the range widened to
///    include 0: {0, max} after a ReLU (activations).
struct QParams {
  int bits = 8;
  bool symmetric = false;
  int axis = -1;        ///< -1: per tensor; else the per-channel axis
  torch::Tensor scale;  ///< float64, one per channel (or one); binary: alpha
  /// int64, one per channel (or one); float64 -1/2 for DoReFa's grid, whose
  /// 2^bits levels are the signed grid shifted by half a step (no level at 0)
  torch::Tensor zero_point;
  std::int64_t qmin = 0, qmax = 255;
  torch::Tensor min, max;  ///< the tracked range the parameters came from

  bool binary() const { return bits == 1 && symmetric; }
  bool per_channel() const { return axis >= 0; }
  /// scale/zero point as JSON (a number per tensor, a list per channel).
  nlohmann::json to_json() const;
};

/// Grid limits for `bits`; `reduce_range` drops one bit, as engines whose
/// int8 kernels accumulate in 16 bits require.
std::pair<std::int64_t, std::int64_t> grid(int bits, bool symmetric, bool reduce_range = false);

/// Parameters that map [min, max] (tensors: one value, or one per channel)
/// onto the grid; the range is widened to include 0 so that 0 is exact.
QParams qparams_from_range(const torch::Tensor& min, const torch::Tensor& max, int bits,
                           bool symmetric, int axis = -1, bool reduce_range = false);

/// Binary (1-bit) parameters of a weight: alpha = mean |w| per channel.
QParams binary_qparams(const torch::Tensor& weight, int axis);

/// How a weight's scale is chosen: its min/max range, or the clipping range
/// that minimises its rounding error (weight_qparams).
enum class WeightRange { minmax, mse };

/// Symmetric parameters of a weight (per channel along `axis`, or one):
/// its min/max range onto the grid, or (mse) the clipping range from 0.1x
/// to 1.5x of it with the least squared rounding error. `narrow` drops the
/// grid's lowest code, so that it is symmetric, [-(2^(b-1) - 1), 2^(b-1) - 1]
/// as ONNX's and TensorRT's int8 weights are: at 2 bits the full grid is
/// {-2, -1, 0, 1}, whose top level clips the largest positive weights, and
/// a search of the clipping range on it trades them for the bulk near 0;
/// the narrow one is ternary, {-1, 0, 1} (Li et al. 2016, arXiv 1605.04711).
QParams weight_qparams(const torch::Tensor& weight, int bits, int axis,
                       WeightRange range = WeightRange::minmax, bool narrow = false);

/// `p` with the scale that puts `clip` (per channel, or one) at the grid's
/// half width, (qmax - qmin) / 2 steps, rounded to float32 as the kernels
/// store it: how weight_qparams scales a narrow grid, and how a search of
/// clipping ranges rescales one.
QParams with_clip(QParams p, const torch::Tensor& clip);

/// Integer codes of `x` on p's grid (int64 values in [qmin, qmax]; for binary
/// 0 means -alpha and 1 means +alpha).
torch::Tensor quantize_codes(const torch::Tensor& x, const QParams& p);
torch::Tensor dequantize_codes(const torch::Tensor& codes, const QParams& p);

/// quantize then dequantize, with a straight-through gradient (identity
/// inside the grid's range).
torch::Tensor fake_quantize(const torch::Tensor& x, const QParams& p);

/// Bit-packed storage of codes in [qmin, qmax]: ceil(numel * bits / 8) bytes.
torch::Tensor pack_codes(const torch::Tensor& codes, int bits, std::int64_t qmin);
torch::Tensor unpack_codes(const torch::Tensor& packed, int bits, std::int64_t qmin,
                           std::int64_t numel);

/// Watches tensors (calibration batches or weights) and proposes qparams.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void observe(const torch::Tensor& x) = 0;
  /// Range to quantize: per channel (shape [C]) when the observer has an axis.
  virtual std::pair<torch::Tensor, torch::Tensor> range(int bits, bool symmetric) const = 0;
  bool seen() const { return seen_; }
  QParams qparams(int bits, bool symmetric, bool reduce_range = false) const;

 protected:
  explicit Observer(int axis) : axis_(axis) {}
  int axis_;
  bool seen_ = false;
};

/// Observer kinds: "minmax", "moving_average" (min/max averaged over batches,
/// factor 0.01), "histogram" (2048-bin histogram, range chosen by minimising
/// quantization MSE) and "percentile" (histogram, range holding `percentile`
/// of the values). Histogram kinds are per tensor only.
std::unique_ptr<Observer> make_observer(const std::string& kind, int axis = -1,
                                        double percentile = 99.99);
const std::vector<std::string>& observer_kinds();

}  // namespace qlab
