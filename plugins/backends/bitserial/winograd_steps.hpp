#pragma once
// The steps the VNNI and AVX2 Winograd kernels share (winograd_vnni.cpp,
// winograd_avx2.cpp), written once over a register type R: R::V holds
// R::kBytes bytes, and R gives the loads, stores and lane arithmetic. Each
// kernel file includes this under its own target pragma with a register
// type of its own (so of internal linkage), so that each instantiation is
// compiled for that file's instructions only.
#include "winograd_parts.hpp"

#include <algorithm>
#include <cstdint>

namespace qlab::bits::winograd {

/// V + 6 of the tile at (ty, tx), R::kBytes channels at a time, from the
/// 4x4 input window's codes (padding codes outside the map; zeros past the
/// last channel, which meet zero weights). In bytes: V lies in [-6, 12].
template <typename R>
void transform_tile(const ConvGeometry& g, const std::uint8_t* image, std::uint8_t pad,
                    std::int64_t ty, std::int64_t tx, std::uint8_t* v, std::int64_t position) {
  using V = typename R::V;
  const std::int64_t c_in = g.in_channels, stride = (c_in + 63) / 64 * 64;
  const V padding = R::splat(pad), offset = R::splat(kOffset);
  for (std::int64_t c0 = 0; c0 < stride; c0 += R::kBytes) {
    const std::int64_t n = std::max<std::int64_t>(0, c_in - c0);
    V d[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const std::int64_t ih = 2 * ty - g.padding + i;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const std::int64_t iw = 2 * tx - g.padding + j;
        d[i][j] = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width
                      ? R::codes(image + (ih * g.width + iw) * c_in + c0, n)
                      : padding;
      }
      // B^T along the row, then (below) along the columns.
      const V t0 = R::sub8(d[i][0], d[i][2]), t1 = R::add8(d[i][1], d[i][2]),
              t2 = R::sub8(d[i][2], d[i][1]), t3 = R::sub8(d[i][1], d[i][3]);
      d[i][0] = t0;
      d[i][1] = t1;
      d[i][2] = t2;
      d[i][3] = t3;
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const V t[4] = {R::sub8(d[0][j], d[2][j]), R::add8(d[1][j], d[2][j]),
                      R::sub8(d[2][j], d[1][j]), R::sub8(d[1][j], d[3][j])};
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) R::store(v + (4 * i + j) * position + c0, R::add8(t[i], offset));
    }
  }
}

/// A tile's 4x4 M (positions `stride` int32 apart) to its 2x2 dots,
/// A^T M A / 4 (exact), in R::kBytes / 4 lanes.
template <typename R>
__attribute__((always_inline)) inline void output_tile(const std::int32_t* m, std::int64_t stride,
                                                       typename R::V (&y)[2][2]) {
  using V = typename R::V;
  V t[4][2];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const std::int32_t* row = m + 4 * i * stride;
    const V m0 = R::load32(row), m1 = R::load32(row + stride), m2 = R::load32(row + 2 * stride),
            m3 = R::load32(row + 3 * stride);
    t[i][0] = R::add32(R::add32(m0, m1), m2);
    t[i][1] = R::sub32(R::sub32(m1, m2), m3);
  }
#pragma GCC unroll 2
  for (int s = 0; s < 2; ++s) {
    y[0][s] = R::quarter(R::add32(R::add32(t[0][s], t[1][s]), t[2][s]));
    y[1][s] = R::quarter(R::sub32(R::sub32(t[1][s], t[2][s]), t[3][s]));
  }
}

}  // namespace qlab::bits::winograd
