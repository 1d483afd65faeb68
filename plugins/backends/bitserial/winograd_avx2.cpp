// The Winograd kernels on AVX2 (winograd_parts.hpp): bytes transformed 32
// channels at a time, M summed two channels a `vpmaddubsw`, requantized in
// double as the other AVX2 kernels do (avx2_store.hpp).
//
// An int8 layer's `vpmaddubsw` can saturate its 16-bit pair sums, so int8
// kernels widen each at once (`vpmaddwd`, a third instruction). Here a pair
// sum is at most 2 x 18 x 27 = 972 in magnitude, so 32 of them (64
// channels) add in 16 bits before one widening: two instructions for 32
// multiply-adds where int8 takes three.
#include "winograd_parts.hpp"

#include "avx2_store.hpp"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
// Every function from here on is compiled for these instructions (GCC's
// pragma; clang's attribute pragma), the shared steps' templates too.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,popcnt")
#endif
#include "winograd_steps.hpp"

namespace qlab::bits::winograd {
namespace {

// The multiply's register tile: 4 tiles x 2 blocks of 16-bit accumulators.
// At 5 tiles GCC kept some of them on the stack: 9.5-10.3 ms against
// 7.9-8.3 ms for the 64->64 layer on one thread.
constexpr int kRows = 4, kBlocks = 2;
// Pair sums added in 16 bits before widening: 32 x 972 < 2^15.
constexpr std::int64_t kPairsPerWidening = 32;

// 32 bytes, or 8 int32, in a ymm register.
struct Ymm {
  using V = __m256i;
  static constexpr std::int64_t kBytes = 32;
  static V codes(const std::uint8_t* p, std::int64_t n) {  // zeros past the first n
    if (n >= 32) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    alignas(32) std::uint8_t part[32] = {};
    std::memcpy(part, p, static_cast<std::size_t>(n));
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(part));
  }
  static V splat(std::uint8_t b) { return _mm256_set1_epi8(static_cast<char>(b)); }
  static V add8(V a, V b) { return _mm256_add_epi8(a, b); }
  static V sub8(V a, V b) { return _mm256_sub_epi8(a, b); }
  static void store(std::uint8_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static V load32(const std::int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static V add32(V a, V b) { return _mm256_add_epi32(a, b); }
  static V sub32(V a, V b) { return _mm256_sub_epi32(a, b); }
  static V quarter(V a) { return _mm256_srai_epi32(a, 2); }
};

// M for R tiles and NB blocks of one position: (V + 6) U over channel
// pairs in 16 bits, widened into M (from -6 sum U) every 32 pairs.
template <int R, int NB>
void multiply(const std::uint8_t* v, std::int64_t v_tile, const std::int8_t* u,
              std::int64_t u_block, std::int64_t pairs, const std::int32_t* start, std::int32_t* m,
              std::int64_t m_tile) {
  for (std::int64_t p0 = 0; p0 < pairs; p0 += kPairsPerWidening) {
    const std::int64_t p1 = std::min(pairs, p0 + kPairsPerWidening);
    __m256i acc[R][NB];
#pragma GCC unroll 5
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm256_setzero_si256();
    for (std::int64_t p = p0; p < p1; ++p) {
      __m256i w[NB];
#pragma GCC unroll 2
      for (int b = 0; b < NB; ++b)
        w[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + b * u_block + p * 32));
#pragma GCC unroll 5
      for (int r = 0; r < R; ++r) {
        std::int16_t two;
        std::memcpy(&two, v + r * v_tile + 2 * p, 2);
        const __m256i a = _mm256_set1_epi16(two);
#pragma GCC unroll 2
        for (int b = 0; b < NB; ++b)
          acc[r][b] = _mm256_add_epi16(acc[r][b], _mm256_maddubs_epi16(a, w[b]));
      }
    }
#pragma GCC unroll 5
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int b = 0; b < NB; ++b) {
        std::int32_t* out = m + r * m_tile + b * kWinogradBlock;
        const std::int32_t* from = p0 == 0 ? start + b * kWinogradBlock : out;
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i wide = _mm256_cvtepi16_epi32(h ? _mm256_extracti128_si256(acc[r][b], 1)
                                                       : _mm256_castsi256_si128(acc[r][b]));
          const __m256i sum = _mm256_add_epi32(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(from + 8 * h)), wide);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * h), sum);
        }
      }
  }
}

struct Multiplies {
  template <int R, int NB>
  static constexpr Multiply get() {
    return &multiply<R, NB>;
  }
};

void finish_block(const ConvGeometry& g, const std::int32_t* m, std::int64_t m_tile,
                  std::int64_t stride, std::int64_t b, std::int64_t first, std::int64_t count,
                  const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  const std::int64_t c_out = g.out_channels, oh_n = g.out_height(), ow_n = g.out_width(),
                     across = tiles_across(g);
  for (int h = 0; h < 2; ++h) {
    const std::int64_t k0 = b * kWinogradBlock + h * kChannelBlock,
                       lanes = std::min<std::int64_t>(kChannelBlock, c_out - k0);
    if (lanes <= 0) return;
    BlockRequant requant;
    if (q) requant = block_requant(*q, k0, lanes);
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t ty = (first + i) / across, tx = (first + i) % across;
      __m256i y[2][2];
      output_tile<Ymm>(m + i * m_tile + h * kChannelBlock, stride, y);
#pragma GCC unroll 2
      for (int r = 0; r < 2; ++r)
#pragma GCC unroll 2
        for (int s = 0; s < 2; ++s) {
          const std::int64_t oh = 2 * ty + r, ow = 2 * tx + s;
          if (oh >= oh_n || ow >= ow_n) continue;
          const std::int64_t at = (oh * ow_n + ow) * c_out + k0;
          store_dots_avx2(y[r][s], lanes, q ? &requant : nullptr, q ? nullptr : dots + at,
                          q ? codes + at : nullptr);
        }
    }
  }
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels kernels{kRows, kBlocks, transform_tile<Ymm>,
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
