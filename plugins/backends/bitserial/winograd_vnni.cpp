// The Winograd kernels on AVX-512 VNNI (winograd_parts.hpp): bytes
// transformed 64 channels at a time, M summed four channels a `vpdpbusd`,
// requantized in registers. The file's target pragmas let it build for any
// x86-64; winograd_conv() calls it only where cpu_has_vnni().
#include "winograd_parts.hpp"

#include <algorithm>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>

// Every function from here on is compiled for these instructions (GCC's
// pragma; clang's attribute pragma), the shared steps' templates too.
#if defined(__clang__)
#pragma clang attribute push( \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")
#endif
#include "winograd_steps.hpp"

namespace qlab::bits::winograd {
namespace {

#if !defined(__clang__)
// GCC 12 warns inside its own AVX-512 headers (bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// The multiply's register tile: 6 tiles x 4 blocks of accumulators. 4 and
// 5 tiles ran alike (3.70-3.86 ms against 3.78-3.88 at 6, the 64->64 layer
// on one thread, alternating in one process).
constexpr int kRows = 6, kBlocks = 4;

// 64 bytes, or 16 int32, in a zmm register.
struct Zmm {
  using V = __m512i;
  static constexpr std::int64_t kBytes = 64;
  static V codes(const std::uint8_t* p, std::int64_t n) {  // zeros past the first n
    return _mm512_maskz_loadu_epi8(n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1, p);
  }
  static V splat(std::uint8_t b) { return _mm512_set1_epi8(static_cast<char>(b)); }
  static V add8(V a, V b) { return _mm512_add_epi8(a, b); }
  static V sub8(V a, V b) { return _mm512_sub_epi8(a, b); }
  static void store(std::uint8_t* p, V v) { _mm512_storeu_si512(p, v); }
  static V load32(const std::int32_t* p) { return _mm512_loadu_si512(p); }
  static V add32(V a, V b) { return _mm512_add_epi32(a, b); }
  static V sub32(V a, V b) { return _mm512_sub_epi32(a, b); }
  static V quarter(V a) { return _mm512_srai_epi32(a, 2); }
};

// M for R tiles and NB blocks of one position: accumulators start at -6 sum U
// and add (V + 6) U over the channels, four a vpdpbusd.
template <int R, int NB>
void multiply(const std::uint8_t* v, std::int64_t v_tile, const std::int8_t* u,
              std::int64_t u_block, std::int64_t quads, const std::int32_t* start, std::int32_t* m,
              std::int64_t m_tile) {
  __m512i acc[R][NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) {
    const __m512i s = _mm512_loadu_si512(start + b * kWinogradBlock);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) acc[r][b] = s;
  }
  for (std::int64_t q = 0; q < quads; ++q) {
    __m512i w[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) w[b] = _mm512_loadu_si512(u + b * u_block + q * 64);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      std::int32_t four;
      __builtin_memcpy(&four, v + r * v_tile + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32(four);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], a, w[b]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b)
      _mm512_storeu_si512(m + r * m_tile + b * kWinogradBlock, acc[r][b]);
}

struct Multiplies {
  template <int R, int NB>
  static constexpr Multiply get() {
    return &multiply<R, NB>;
  }
};

// round(m d + c) clamped, 8 lanes (a lambda would not take the target).
inline __m256i code_of(__m256i d, __m512d m, __m512d c, __m512d lo, __m512d hi) {
  const __m512d v = _mm512_fmadd_pd(m, _mm512_cvtepi32_pd(d), c);
  return _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(v, lo), hi));
}

// Block b's 16 output channels of `count` tiles from tile `first`: their
// dots, or codes (what requantizes the block loaded once for them all).
void finish_block(const ConvGeometry& g, const std::int32_t* m, std::int64_t m_tile,
                  std::int64_t stride, std::int64_t b, std::int64_t first, std::int64_t count,
                  const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  const std::int64_t c_out = g.out_channels, oh_n = g.out_height(), ow_n = g.out_width(),
                     across = tiles_across(g), k0 = b * kWinogradBlock;
  const std::int64_t lanes = std::min<std::int64_t>(kWinogradBlock, c_out - k0);
  const auto mask = static_cast<__mmask16>((1u << lanes) - 1);
  const auto low = static_cast<__mmask8>(mask & 0xff), high = static_cast<__mmask8>(mask >> 8);
  const int levels = q ? q->levels() : 0;
  // Thresholds (levels past the layer's at INT32_MAX, which no dot
  // exceeds), or the double path's m and c, as requantize().
  __m512i above[kMaxThresholds];
#pragma GCC unroll 3
  for (int j = 0; j < kMaxThresholds; ++j)
    above[j] = j < levels ? _mm512_maskz_loadu_epi32(mask, q->thresholds + j * q->channels + k0)
                          : _mm512_set1_epi32(std::numeric_limits<std::int32_t>::max());
  const bool doubles = q && !levels;
  const __m512d m_lo = doubles ? _mm512_maskz_loadu_pd(low, q->m + k0) : _mm512_setzero_pd(),
                m_hi = doubles ? _mm512_maskz_loadu_pd(high, q->m + k0 + 8) : _mm512_setzero_pd(),
                c_lo = doubles ? _mm512_maskz_loadu_pd(low, q->c + k0) : _mm512_setzero_pd(),
                c_hi = doubles ? _mm512_maskz_loadu_pd(high, q->c + k0 + 8) : _mm512_setzero_pd(),
                lo = _mm512_set1_pd(q ? q->lo : 0), hi = _mm512_set1_pd(q ? q->hi : 0);
  const __m512i one = _mm512_set1_epi32(1),
                lo_code = _mm512_set1_epi32(q ? static_cast<int>(q->lo) : 0);
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t ty = (first + i) / across, tx = (first + i) % across;
    __m512i y[2][2];
    output_tile<Zmm>(m + i * m_tile, stride, y);
#pragma GCC unroll 2
    for (int r = 0; r < 2; ++r)
#pragma GCC unroll 2
      for (int s = 0; s < 2; ++s) {
        const std::int64_t oh = 2 * ty + r, ow = 2 * tx + s;
        if (oh >= oh_n || ow >= ow_n) continue;
        const std::int64_t at = (oh * ow_n + ow) * c_out + k0;
        if (!q) {
          _mm512_mask_storeu_epi32(dots + at, mask, y[r][s]);
          continue;
        }
        __m128i out;
        if (levels) {  // lo plus the thresholds under the dot
          __m512i code = lo_code;
#pragma GCC unroll 3
          for (int j = 0; j < kMaxThresholds; ++j)
            code =
                _mm512_mask_add_epi32(code, _mm512_cmpgt_epi32_mask(y[r][s], above[j]), code, one);
          out = _mm512_cvtepi32_epi8(code);
        } else {
          const __m256i d_lo = _mm512_castsi512_si256(y[r][s]),
                        d_hi = _mm512_extracti64x4_epi64(y[r][s], 1);
          out = _mm512_cvtusepi32_epi8(
              _mm512_inserti64x4(_mm512_castsi256_si512(code_of(d_lo, m_lo, c_lo, lo, hi)),
                                 code_of(d_hi, m_hi, c_hi, lo, hi), 1));
        }
        _mm_mask_storeu_epi8(codes + at, mask, out);
      }
  }
}

}  // namespace

const Kernels& vnni_kernels() {
  static const Kernels kernels{kRows, kBlocks, transform_tile<Zmm>,
                               multiply_for<Multiplies, kRows, kBlocks>, finish_block};
  return kernels;
}

}  // namespace qlab::bits::winograd
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
