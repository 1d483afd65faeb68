#pragma once
// The target attributes of the bit kernels' vector code, and the AVX2 store
// both AVX2 kernels end a block of 8 output channels with.
#include "bit_kernels.hpp"

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#define QLAB_AVX2 __attribute__((target("avx2,fma,popcnt")))
#define QLAB_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,fma,popcnt")))

namespace qlab::bits {

/// What requantizes a block of 8 output channels [channel, channel +
/// lanes), loaded once: a kernel that stores many columns of one block
/// would otherwise reload it at each, as its byte stores may alias it.
struct BlockRequant {
  __m256d m[2], add[2], lo, hi;
};

QLAB_AVX2 __attribute__((always_inline)) inline BlockRequant block_requant(const Requant& q,
                                                                           std::int64_t channel,
                                                                           std::int64_t lanes) {
  const double *m = q.m + channel, *add = q.c + channel;
  double m_part[kChannelBlock] = {}, add_part[kChannelBlock] = {};
  if (lanes < kChannelBlock) {  // m and c end at the last channel
    std::copy(m, m + lanes, m_part);
    std::copy(add, add + lanes, add_part);
    m = m_part;
    add = add_part;
  }
  BlockRequant r;
  for (int h = 0; h < 2; ++h) {
    r.m[h] = _mm256_loadu_pd(m + 4 * h);
    r.add[h] = _mm256_loadu_pd(add + 4 * h);
  }
  r.lo = _mm256_set1_pd(q.lo);
  r.hi = _mm256_set1_pd(q.hi);
  return r;
}

/// Stores the first `lanes` of 8 dots: with no `r`, as int32 to `dots`;
/// with `r`, as the codes requantize() computes (fused multiply-add in
/// double, clamp, round half to even, narrow to bytes) to `codes`.
QLAB_AVX2 __attribute__((always_inline)) inline void store_dots_avx2(__m256i dot,
                                                                     std::int64_t lanes,
                                                                     const BlockRequant* r,
                                                                     std::int32_t* dots,
                                                                     std::uint8_t* codes) {
  if (!r) {
    if (lanes == kChannelBlock) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dots), dot);
    } else {
      alignas(32) std::int32_t part[kChannelBlock];
      _mm256_store_si256(reinterpret_cast<__m256i*>(part), dot);
      std::copy(part, part + lanes, dots);
    }
    return;
  }
  __m128i half[2];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    const __m256d d =
        _mm256_cvtepi32_pd(h ? _mm256_extracti128_si256(dot, 1) : _mm256_castsi256_si128(dot));
    const __m256d v = _mm256_fmadd_pd(r->m[h], d, r->add[h]);
    half[h] = _mm256_cvtpd_epi32(_mm256_min_pd(_mm256_max_pd(v, r->lo), r->hi));
  }
  const __m128i words = _mm_packus_epi32(half[0], half[1]);
  const __m128i bytes = _mm_packus_epi16(words, words);
  if (lanes == kChannelBlock) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes), bytes);
  } else {
    alignas(16) std::uint8_t part[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(part), bytes);
    std::copy(part, part + lanes, codes);
  }
}

}  // namespace qlab::bits
#endif
