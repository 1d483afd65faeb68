#include "code_kernels.hpp"

#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

namespace qlab::int8 {
namespace {

// Runs f(begin, end) over [0, n), on OpenMP's threads when asked.
template <typename F>
void for_range(std::int64_t n, std::int64_t grain, bool parallel, const F& f) {
  if (parallel)
    at::parallel_for(0, n, grain, f);
  else
    f(0, n);
}

// Rounds to the nearest integer, ties to even, for |v| < 2^22: adding and
// subtracting 1.5 * 2^23 leaves the float unit to round in the current
// (nearest-even) mode. Unlike std::nearbyint, it vectorises on plain SSE2.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// The loops take plain values and restrict pointers: a uint8 store may
// alias anything, and through a lambda's captured references it would make
// the compiler reload every operand each step instead of vectorising.
void quantize_span(const float* __restrict src, std::uint8_t* __restrict dst, std::int64_t n, float inv_scale,
                   std::int32_t zero_point) {
  // Clamped before rounding: both bounds are integers, and a NaN becomes lo.
  const float lo = static_cast<float>(-zero_point), hi = static_cast<float>(255 - zero_point);
  for (std::int64_t i = 0; i < n; ++i) {
    float v = src[i] * inv_scale;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    dst[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(round_half_even(v)) + zero_point);
  }
}

// One output row of average pooling, as flat loops over its width x
// channels positions j whatever the memory format: `in_at[j]` is where j's
// window starts in the input row, `taps` the window's offsets from there,
// `out_at[j]` where j's mean goes.
void pool_row(const std::uint8_t* __restrict in, std::uint8_t* __restrict out, std::int32_t* __restrict sum,
              const std::int64_t* __restrict in_at, const std::int64_t* __restrict out_at, std::int64_t n,
              const std::vector<std::int64_t>& taps) {
  for (std::int64_t j = 0; j < n; ++j) sum[j] = 0;
  for (const std::int64_t t : taps) {
    const std::uint8_t* __restrict p = in + t;
    for (std::int64_t j = 0; j < n; ++j) sum[j] += p[in_at[j]];
  }
  // A float quotient of integers below 2^24 is correctly rounded, so a mean
  // that is exactly k + 1/2 stays a tie and goes to even, as in ATen.
  const float count = static_cast<float>(taps.size());
  for (std::int64_t j = 0; j < n; ++j)
    sum[j] = static_cast<std::int32_t>(round_half_even(static_cast<float>(sum[j]) / count));
  for (std::int64_t j = 0; j < n; ++j) out[out_at[j]] = static_cast<std::uint8_t>(sum[j]);
}

}  // namespace

torch::Tensor quantize_codes(const torch::Tensor& x, double scale, std::int64_t zero_point, bool parallel) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat, "quantize_codes takes float tensors");
  const auto format = x.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto src_tensor = x.contiguous(format);
  auto out = at::_empty_affine_quantized(x.sizes(), x.options().dtype(torch::kQUInt8), scale, zero_point, format);
  const float* src = src_tensor.data_ptr<float>();
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
  const float inv_scale = static_cast<float>(1.0 / scale);
  const auto zp = static_cast<std::int32_t>(zero_point);
  for_range(x.numel(), 16384, parallel, [=](std::int64_t begin, std::int64_t end) {
    quantize_span(src + begin, dst + begin, end - begin, inv_scale, zp);
  });
  return out;
}

torch::Tensor avg_pool_codes(const torch::Tensor& x, std::array<std::int64_t, 2> kernel,
                             std::array<std::int64_t, 2> stride, bool parallel) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kQUInt8, "avg_pool_codes takes 4-D quint8 tensors");
  const auto format = x.is_contiguous(at::MemoryFormat::ChannelsLast) ? at::MemoryFormat::ChannelsLast
                                                                      : at::MemoryFormat::Contiguous;
  const auto in = x.contiguous(format);
  const std::int64_t N = in.size(0), C = in.size(1), H = in.size(2), W = in.size(3);
  TORCH_CHECK(kernel[0] <= H && kernel[1] <= W, "pooling window larger than its input");
  const std::int64_t OH = (H - kernel[0]) / stride[0] + 1, OW = (W - kernel[1]) / stride[1] + 1;
  auto out = at::_empty_affine_quantized({N, C, OH, OW}, in.options(), in.q_scale(), in.q_zero_point(), format);
  const auto* src = reinterpret_cast<const std::uint8_t*>(in.data_ptr<c10::quint8>());
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
  const auto is = in.strides(), os = out.strides();
  std::vector<std::int64_t> in_at, out_at, taps;
  for (std::int64_t ow = 0; ow < OW; ++ow)
    for (std::int64_t c = 0; c < C; ++c) {
      in_at.push_back(ow * stride[1] * is[3] + c * is[1]);
      out_at.push_back(ow * os[3] + c * os[1]);
    }
  for (std::int64_t ky = 0; ky < kernel[0]; ++ky)
    for (std::int64_t kx = 0; kx < kernel[1]; ++kx) taps.push_back(ky * is[2] + kx * is[3]);
  const std::int64_t n = OW * C, sh = stride[0];
  for_range(N * OH, 1, parallel, [&, src, dst, n, sh, OH](std::int64_t begin, std::int64_t end) {
    std::vector<std::int32_t> sum(static_cast<std::size_t>(n));
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t b = row / OH, oh = row % OH;
      pool_row(src + b * is[0] + oh * sh * is[2], dst + b * os[0] + oh * os[2], sum.data(), in_at.data(),
               out_at.data(), n, taps);
    }
  });
  return out;
}

}  // namespace qlab::int8
