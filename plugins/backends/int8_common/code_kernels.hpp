#pragma once
// Kernels on quint8 codes for the steps around the engines' convolutions and
// linear layers. LibTorch 1.13 without FBGEMM runs them as scalar loops, or
// as five float passes when composed from ATen ops; these take one pass.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace qlab::int8 {

/// The quint8 tensor of `x` for (scale, zero_point): clamp(round(x / scale)
/// + zero_point, qmin, qmax), rounding half to even like
/// at::quantize_per_tensor. 4-D tensors come out channels-last, the layout
/// the engines' convolutions take. `parallel`: split the work over
/// LibTorch's OpenMP threads.
torch::Tensor quantize_codes(const torch::Tensor& x, double scale, std::int64_t zero_point,
                             bool parallel, std::uint8_t qmin = 0, std::uint8_t qmax = 255);

/// Clamps the codes of a dense quint8 tensor to [qmin, qmax], in place: an
/// engine's kernel requantizes onto all 256 codes, and a narrower grid (7-bit
/// activations, where pairs of products must not saturate) needs its own.
void clamp_codes_(torch::Tensor& q, std::uint8_t qmin, std::uint8_t qmax, bool parallel);

/// Average pooling of a 4-D quint8 tensor over `kernel` windows every
/// `stride`, without padding, computed on its codes: input and output share
/// one scale and zero point z, so the mean of the codes minus z, rounded half
/// to even, plus z, is the quantized mean (as ONNX QDQ rounds it). Keeps the
/// input's memory format.
torch::Tensor avg_pool_codes(const torch::Tensor& x, std::array<std::int64_t, 2> kernel,
                             std::array<std::int64_t, 2> stride, bool parallel);

/// Channels a map may have for average_2x2_codes.
constexpr std::int64_t kAverage2x2MaxChannels = 16;

/// avg_pool_codes over 2x2 windows every 2 of one channels-last map of
/// codes, [height][width][channels] with zero point `zero_point`, into
/// [height / 2][width / 2][channels]; at most kAverage2x2MaxChannels
/// channels. `scratch`: a buffer it grows as it needs, kept between calls.
void average_2x2_codes(const std::uint8_t* map, std::int64_t height, std::int64_t width,
                       std::int64_t channels, std::uint8_t zero_point, std::uint8_t* out,
                       std::vector<std::uint8_t>& scratch);

}  // namespace qlab::int8
