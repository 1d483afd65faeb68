#include "code_kernels.hpp"

#include <qlab/parallel.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace qlab::int8 {
namespace {

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
// Cloned for AVX2, chosen when the program loads: twice the lanes of the
// baseline's SSE2 took LeNet's input (a thread's 32 images) 8.1 -> 4.7 us.
__attribute__((target_clones("avx2", "default"))) void quantize_span(
    const float* __restrict src, std::uint8_t* __restrict dst, std::int64_t n, float inv_scale,
    std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax) {
  // Clamped before rounding: both bounds are integers, and a NaN becomes lo.
  const float lo = static_cast<float>(qmin - zero_point),
              hi = static_cast<float>(qmax - zero_point);
  for (std::int64_t i = 0; i < n; ++i) {
    float v = src[i] * inv_scale;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    dst[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(round_half_even(v)) + zero_point);
  }
}

// Where one output row of a pooling reads and writes. Positions in a row
// are (w, c) pairs, numbered w * C + c; the offsets make the loops the same
// in either memory format, and `dense` marks the channels-last case, where
// they are the identity.
struct PoolPlan {
  std::int64_t channels = 0;
  std::vector<std::int32_t> column_at;  // input row offset of each (w, c): W * C of them
  std::vector<std::int64_t> rows;       // offsets of the window's kh rows
  std::vector<std::int32_t> window_at;  // per output column ow: its window's first column
  std::vector<std::int32_t> taps;       // columns of a window's kw pixels, from its first
  std::vector<std::int32_t> out_at;     // output row offset of each (ow, c)
  std::int32_t zero_point = 0;
  bool dense = false;
  int shift = -1;  // log2 of a window's pixels where that is a whole number above 0
};

// Lanes of the few-channel window sums; the buffers hold as many spare.
constexpr std::int64_t kSpan = 16;

// Writes the codes of a row's n = plan.out_at.size() window sums. The mean
// is rounded half to even among the values (mean - z), as ONNX's
// DequantizeLinear, AveragePool, QuantizeLinear means it; ATen rounds among
// the codes, which breaks a tie the other way whenever z is odd. A float
// quotient of integers below 2^24 is correctly rounded, so a mean that is
// exactly k + 1/2 stays a tie.
template <typename Sum>
void round_means(const Sum* __restrict sums, std::uint8_t* __restrict out, const PoolPlan& plan) {
  const auto n = static_cast<std::int64_t>(plan.out_at.size());
  const float count = static_cast<float>(plan.rows.size() * plan.taps.size());
  const auto z = static_cast<float>(plan.zero_point);
  const std::int32_t zero_point = plan.zero_point;
  const std::int32_t* __restrict out_at = plan.out_at.data();
  if (plan.dense)
    for (std::int64_t j = 0; j < n; ++j)
      out[j] = static_cast<std::uint8_t>(
          static_cast<std::int32_t>(round_half_even(static_cast<float>(sums[j]) / count - z)) +
          zero_point);
  else
    for (std::int64_t j = 0; j < n; ++j)
      out[out_at[j]] = static_cast<std::uint8_t>(
          static_cast<std::int32_t>(round_half_even(static_cast<float>(sums[j]) / count - z)) +
          zero_point);
}

// Pools separably: sums the window's rows per column, then each window's
// columns, then divides. Columns sum to at most 255 * kh, windows to
// 255 * kh * kw. A window's columns are contiguous runs of C channels and
// add as such: C lanes at a time with many channels, kSpan with few.
void pool_row(const std::uint8_t* __restrict in, std::uint8_t* __restrict out,
              std::int32_t* __restrict column, std::int32_t* __restrict acc, const PoolPlan& plan) {
  const auto columns = static_cast<std::int64_t>(plan.column_at.size());
  const auto n = static_cast<std::int64_t>(plan.out_at.size());
  const std::int64_t C = plan.channels;
  const std::int32_t* __restrict column_at = plan.column_at.data();
  for (std::size_t r = 0; r < plan.rows.size(); ++r) {
    const std::uint8_t* __restrict p = in + plan.rows[r];
    if (r == 0 && plan.dense)
      for (std::int64_t q = 0; q < columns; ++q) column[q] = p[q];
    else if (r == 0)
      for (std::int64_t q = 0; q < columns; ++q) column[q] = p[column_at[q]];
    else if (plan.dense)
      for (std::int64_t q = 0; q < columns; ++q) column[q] += p[q];
    else
      for (std::int64_t q = 0; q < columns; ++q) column[q] += p[column_at[q]];
  }
  const std::int32_t* __restrict window_at = plan.window_at.data();
  if (C >= kSpan) {
    for (std::int64_t j = 0; j < n; j += C) {
      const std::int32_t* __restrict first = column + window_at[j / C];
      for (std::int64_t c = 0; c < C; ++c) acc[j + c] = first[c];
      for (std::size_t t = 1; t < plan.taps.size(); ++t) {
        const std::int32_t* __restrict p = first + plan.taps[t];
        for (std::int64_t c = 0; c < C; ++c) acc[j + c] += p[c];
      }
    }
  } else {
    // A window's C channels as one fixed run of kSpan lanes, which
    // vectorises where a run of C would not: the lanes past C spill into
    // the next window's place, which that window then overwrites (the
    // buffers have kSpan spare lanes).
    for (std::int64_t w = 0; w < n / C; ++w) {
      const std::int32_t* __restrict first = column + window_at[w];
      std::int32_t sum[kSpan];
      for (std::int64_t c = 0; c < kSpan; ++c) sum[c] = first[c];
      for (std::size_t t = 1; t < plan.taps.size(); ++t)
        for (std::int64_t c = 0; c < kSpan; ++c) sum[c] += first[plan.taps[t] + c];
      for (std::int64_t c = 0; c < kSpan; ++c) acc[w * C + c] = sum[c];
    }
  }
  round_means(acc, out, plan);
}

// dst[q] = the sum of the `count` runs at(k)[q], for q < n, in 16 bits.
// The first two runs are summed in one pass: a pass that only copied would
// become a memmove call.
template <typename T, typename At>
__attribute__((always_inline)) inline void add_up(std::uint16_t* __restrict dst, std::size_t count,
                                                  std::int64_t n, At at) {
  const T* __restrict first = at(0);
  if (count == 1) {
    for (std::int64_t q = 0; q < n; ++q) dst[q] = first[q];
    return;
  }
  const T* __restrict second = at(1);
  for (std::int64_t q = 0; q < n; ++q) dst[q] = static_cast<std::uint16_t>(first[q] + second[q]);
  for (std::size_t k = 2; k < count; ++k) {
    const T* __restrict p = at(k);
    for (std::int64_t q = 0; q < n; ++q) dst[q] = static_cast<std::uint16_t>(dst[q] + p[q]);
  }
}

// The code of a window of 2^k pixels (k = shift) from its sum: the mean
// value (sum - 2^k z) / 2^k is q - z and r / 2^k over, for q = sum >> k,
// r = sum & (2^k - 1); half to even rounds up past a half, and at a half
// where q - z is odd: where r plus that parity passes the half. q + up <=
// 255. Inlined into the pooling rows' vectorised loops.
// All in 16 bits: in int, GCC 12 left pool_row_narrow's loop scalar.
__attribute__((always_inline)) inline std::uint8_t shifted_mean_code(std::uint16_t sum,
                                                                     std::uint16_t shift,
                                                                     std::uint16_t z) {
  const auto low = static_cast<std::uint16_t>((1 << shift) - 1),
             half = static_cast<std::uint16_t>(1 << (shift - 1));
  const std::uint16_t q = sum >> shift, r = sum & low;
  const std::uint16_t up = static_cast<std::uint16_t>(r + ((q ^ z) & 1)) > half;
  return static_cast<std::uint8_t>(q + up);
}

// pool_row for the commonest pooling, 2x2 windows at stride 2 on a
// channels-last row of at most kSpan channels: at every start q the mean of
// codes q and q + C of both rows (shifted_mean_code), in one contiguous
// pass; then each window's C codes, at every other pixel. Where
// pool_row_narrow makes three passes through its buffers, this took LeNet's
// first pooling from 23.9 to 20.6 us, and the two poolings' share of the
// binary LeNet's time from 15% to 9% (perf).
__attribute__((target_clones("avx2", "default"))) void pool_row_2x2(
    const std::uint8_t* __restrict top, const std::uint8_t* __restrict bottom,
    std::uint8_t* __restrict out, std::uint8_t* __restrict means, std::uint8_t* __restrict windows,
    std::int64_t C, std::int64_t outputs, std::uint16_t zero_point) {
  const std::int64_t starts = (2 * outputs - 1) * C;
  for (std::int64_t q = 0; q < starts; ++q)
    means[q] = shifted_mean_code(
        static_cast<std::uint16_t>(top[q] + top[q + C] + bottom[q] + bottom[q + C]), 2, zero_point);
  for (std::int64_t ow = 0; ow < outputs; ++ow)
    std::memcpy(windows + ow * C, means + 2 * ow * C, kSpan);
  std::memcpy(out, windows, static_cast<std::size_t>(outputs * C));
}

// pool_row for channels-last rows whose window sums fit 16 bits: twice the
// lanes, and no gathers. It sums the rows, then the window at every start
// (shifted contiguous adds), then moves each window's C sums into place.
// Cloned for AVX2, chosen when the program loads.
__attribute__((target_clones("avx2", "default"))) void pool_row_narrow(
    const std::uint8_t* __restrict in, std::uint8_t* __restrict out,
    std::uint16_t* __restrict column, std::uint16_t* __restrict window, const PoolPlan& plan) {
  const auto columns = static_cast<std::int64_t>(plan.column_at.size());
  const std::int64_t C = plan.channels;
  add_up<std::uint8_t>(column, plan.rows.size(), columns,
                       [&](std::size_t r) { return in + plan.rows[r]; });
  const std::uint16_t* sums = column;  // one tap a window: its column sums
  if (plan.taps.size() > 1) {
    add_up<std::uint16_t>(window, plan.taps.size(), columns - plan.taps.back(),
                          [&](std::size_t t) { return column + plan.taps[t]; });
    sums = window;
  }
  // Each output window's C sums, into the buffer not read from: with few
  // channels as a fixed run of kSpan lanes whose spill the next window
  // overwrites (the buffers have kSpan spare).
  std::uint16_t* means = sums == window ? column : window;
  const auto outputs = static_cast<std::int64_t>(plan.window_at.size());
  for (std::int64_t ow = 0; ow < outputs; ++ow) {
    const std::uint16_t* from = sums + plan.window_at[ow];
    if (C < kSpan)
      std::memcpy(means + ow * C, from, kSpan * sizeof(std::uint16_t));
    else
      std::memcpy(means + ow * C, from, static_cast<std::size_t>(C) * sizeof(std::uint16_t));
  }
  if (plan.shift < 0) {
    round_means(means, out, plan);
    return;
  }
  const auto n = static_cast<std::int64_t>(plan.out_at.size());
  const auto shift = static_cast<std::uint16_t>(plan.shift),
             z = static_cast<std::uint16_t>(plan.zero_point);
  for (std::int64_t j = 0; j < n; ++j) out[j] = shifted_mean_code(means[j], shift, z);
}

}  // namespace

torch::Tensor quantize_codes(const torch::Tensor& x, double scale, std::int64_t zero_point,
                             bool parallel, std::uint8_t qmin, std::uint8_t qmax) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat, "quantize_codes takes float tensors");
  const auto format = x.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto src_tensor = x.contiguous(format);
  auto out = at::_empty_affine_quantized(x.sizes(), x.options().dtype(torch::kQUInt8), scale,
                                         zero_point, format);
  const float* src = src_tensor.data_ptr<float>();
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
  const float inv_scale = static_cast<float>(1.0 / scale);
  const auto zp = static_cast<std::int32_t>(zero_point);
  for_ranges(x.numel(), 16384, parallel, [=](std::int64_t begin, std::int64_t end) {
    quantize_span(src + begin, dst + begin, end - begin, inv_scale, zp, qmin, qmax);
  });
  return out;
}

void clamp_codes_(torch::Tensor& q, std::uint8_t qmin, std::uint8_t qmax, bool parallel) {
  TORCH_CHECK(q.scalar_type() == torch::kQUInt8 && q.is_non_overlapping_and_dense(),
              "clamp_codes_ takes dense quint8 tensors");
  auto* codes = reinterpret_cast<std::uint8_t*>(q.data_ptr<c10::quint8>());
  for_ranges(q.numel(), 65536, parallel, [=](std::int64_t begin, std::int64_t end) {
    std::uint8_t* __restrict p = codes + begin;
    for (std::int64_t i = 0; i < end - begin; ++i) {
      const std::uint8_t v = p[i] < qmin ? qmin : p[i];
      p[i] = v > qmax ? qmax : v;
    }
  });
}

void average_2x2_codes(const std::uint8_t* map, std::int64_t height, std::int64_t width,
                       std::int64_t channels, std::uint8_t zero_point, std::uint8_t* out,
                       std::vector<std::uint8_t>& scratch) {
  static_assert(kAverage2x2MaxChannels == kSpan, "pool_row_2x2's windows are kSpan lanes");
  TORCH_CHECK(channels >= 1 && channels <= kSpan, "average_2x2_codes takes 1 to ", kSpan,
              " channels");
  const std::int64_t row = width * channels, outputs = width / 2;
  const auto means = static_cast<std::size_t>(row + kSpan);
  if (scratch.size() < means + static_cast<std::size_t>(outputs * channels + kSpan))
    scratch.resize(means + static_cast<std::size_t>(outputs * channels + kSpan));
  for (std::int64_t oh = 0; oh < height / 2; ++oh)
    pool_row_2x2(map + 2 * oh * row, map + (2 * oh + 1) * row, out + oh * outputs * channels,
                 scratch.data(), scratch.data() + means, channels, outputs, zero_point);
}

torch::Tensor avg_pool_codes(const torch::Tensor& x, std::array<std::int64_t, 2> kernel,
                             std::array<std::int64_t, 2> stride, bool parallel) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kQUInt8,
              "avg_pool_codes takes 4-D quint8 tensors");
  const auto format = x.is_contiguous(at::MemoryFormat::ChannelsLast)
                          ? at::MemoryFormat::ChannelsLast
                          : at::MemoryFormat::Contiguous;
  const auto in = x.contiguous(format);
  const std::int64_t N = in.size(0), C = in.size(1), H = in.size(2), W = in.size(3);
  TORCH_CHECK(kernel[0] <= H && kernel[1] <= W, "pooling window larger than its input");
  TORCH_CHECK(C * H * W <= std::numeric_limits<std::int32_t>::max(),
              "one sample's map is too large to pool");
  TORCH_CHECK(kernel[0] * kernel[1] * 255 < (1 << 24),
              "a pooling window this large loses float exactness");
  const std::int64_t OH = (H - kernel[0]) / stride[0] + 1, OW = (W - kernel[1]) / stride[1] + 1;
  auto out = at::_empty_affine_quantized({N, C, OH, OW}, in.options(), in.q_scale(),
                                         in.q_zero_point(), format);
  const auto* src = reinterpret_cast<const std::uint8_t*>(in.data_ptr<c10::quint8>());
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
  const auto is = in.strides(), os = out.strides();
  PoolPlan plan;
  plan.channels = C;
  for (std::int64_t w = 0; w < W; ++w)
    for (std::int64_t c = 0; c < C; ++c)
      plan.column_at.push_back(static_cast<std::int32_t>(w * is[3] + c * is[1]));
  for (std::int64_t ky = 0; ky < kernel[0]; ++ky) plan.rows.push_back(ky * is[2]);
  for (std::int64_t kx = 0; kx < kernel[1]; ++kx)
    plan.taps.push_back(static_cast<std::int32_t>(kx * C));
  for (std::int64_t ow = 0; ow < OW; ++ow) {
    plan.window_at.push_back(static_cast<std::int32_t>(ow * stride[1] * C));
    for (std::int64_t c = 0; c < C; ++c)
      plan.out_at.push_back(static_cast<std::int32_t>(ow * os[3] + c * os[1]));
  }
  plan.dense = format == at::MemoryFormat::ChannelsLast;
  plan.zero_point = static_cast<std::int32_t>(in.q_zero_point());
  const std::int64_t pixels = kernel[0] * kernel[1];
  for (int k = 1; k < 16; ++k)
    if (pixels == std::int64_t{1} << k) plan.shift = k;
  const std::int64_t sh = stride[0];
  const bool narrow = plan.dense && kernel[0] * kernel[1] * 255 <= 0xffff;
  const bool two_by_two = plan.dense && kernel[0] == 2 && kernel[1] == 2 && stride[0] == 2 &&
                          stride[1] == 2 && C <= kSpan;
  for_ranges(N * OH, 1, parallel, [&, src, dst, sh, OH](std::int64_t begin, std::int64_t end) {
    if (two_by_two) {
      std::vector<std::uint8_t> means(static_cast<std::size_t>(W * C + kSpan)),
          windows(static_cast<std::size_t>(OW * C + kSpan));
      for (std::int64_t row = begin; row < end; ++row) {
        const std::int64_t b = row / OH, oh = row % OH;
        const std::uint8_t* top = src + b * is[0] + oh * sh * is[2];
        pool_row_2x2(top, top + is[2], dst + b * os[0] + oh * os[2], means.data(), windows.data(),
                     C, OW, static_cast<std::uint16_t>(plan.zero_point));
      }
      return;
    }
    if (narrow) {
      std::vector<std::uint16_t> column(plan.column_at.size() + kSpan),
          window(plan.column_at.size() + kSpan);
      for (std::int64_t row = begin; row < end; ++row) {
        const std::int64_t b = row / OH, oh = row % OH;
        pool_row_narrow(src + b * is[0] + oh * sh * is[2], dst + b * os[0] + oh * os[2],
                        column.data(), window.data(), plan);
      }
      return;
    }
    std::vector<std::int32_t> column(plan.column_at.size() + kSpan),
        acc(plan.out_at.size() + kSpan);
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t b = row / OH, oh = row % OH;
      pool_row(src + b * is[0] + oh * sh * is[2], dst + b * os[0] + oh * os[2], column.data(),
               acc.data(), plan);
    }
  });
  return out;
}

}  // namespace qlab::int8
