// F(2x2, 3x3) on low-bit codes (winograd_kernels.hpp): the transformed
// weights, a portable kernel, and the loop that drives the vector kernels
// (winograd_vnni.cpp, winograd_avx2.cpp).
#include "winograd_kernels.hpp"

#include "winograd_parts.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace qlab::bits {
namespace {

using winograd::kMaxCode;
using winograd::kOffset;
using winograd::kPositions;
using winograd::tiles_across;
using winograd::tiles_down;

// 2G: G of F(2, 3) scaled by 2, so that U is integer (and 4x the true one).
constexpr int kG2[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};

// B^T applied to the 4 rows (or columns) of a window, in place.
template <typename T>
void input_transform(T& d0, T& d1, T& d2, T& d3) {
  const T t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3;
  d0 = t0;
  d1 = t1;
  d2 = t2;
  d3 = t3;
}

// A^T applied to 4 rows (or columns): 2 outputs.
template <typename T>
void output_transform(const T& m0, const T& m1, const T& m2, const T& m3, T& y0, T& y1) {
  y0 = m0 + m1 + m2;
  y1 = m1 - m2 - m3;
}

// Tiles transformed and multiplied together: their V (24 KB at 64
// channels) and M (96 KB at 64 output channels). Blocks of 6 to 48 tiles
// ran alike: 3.29-3.37 ms for the 64->64 28x28 layer at batch 64 on one
// thread (VNNI), alternating in one process.
constexpr std::int64_t kTiles = 24;

// Work item `item` (winograd_items()): its image and its tiles [first, last).
struct Item {
  std::int64_t image, first, last;
};
Item item_at(const ConvGeometry& g, std::int64_t item) {
  const std::int64_t tiles = tiles_down(g) * tiles_across(g),
                     per_image = (tiles + kTiles - 1) / kTiles;
  const std::int64_t first = item % per_image * kTiles;
  return {item / per_image, first, std::min(tiles, first + kTiles)};
}

// The portable kernel: one tile at a time, in plain integers, by the same
// transforms; its dots go through requantize().
void conv_portable(const ConvGeometry& g, const std::uint8_t* nhwc, std::uint8_t pad,
                   const WinogradWeights& w, std::int64_t first, std::int64_t last,
                   const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  const std::int64_t c_in = g.in_channels, c_out = g.out_channels, oh_n = g.out_height(),
                     ow_n = g.out_width(), image_out = oh_n * ow_n * c_out;
  std::vector<std::int32_t> v(static_cast<std::size_t>(kPositions * c_in)),
      m(static_cast<std::size_t>(kPositions * c_out)), y(static_cast<std::size_t>(4 * c_out));
  for (std::int64_t item = first; item < last; ++item) {
    const Item it = item_at(g, item);
    const std::uint8_t* in = nhwc + it.image * g.height * g.width * c_in;
    for (std::int64_t tile = it.first; tile < it.last; ++tile) {
      const std::int64_t ty = tile / tiles_across(g), tx = tile % tiles_across(g);
      for (std::int64_t c = 0; c < c_in; ++c) {
        std::int32_t d[4][4];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) {
            const std::int64_t ih = 2 * ty - g.padding + i, iw = 2 * tx - g.padding + j;
            d[i][j] = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width
                          ? in[(ih * g.width + iw) * c_in + c]
                          : pad;
          }
        for (auto& row : d) input_transform(row[0], row[1], row[2], row[3]);
        for (int j = 0; j < 4; ++j) input_transform(d[0][j], d[1][j], d[2][j], d[3][j]);
        for (int p = 0; p < kPositions; ++p)
          v[static_cast<std::size_t>(p * c_in + c)] = d[p / 4][p % 4];
      }
      for (int p = 0; p < kPositions; ++p)
        for (std::int64_t k = 0; k < c_out; ++k) {
          std::int32_t sum = 0;
          for (std::int64_t c = 0; c < c_in; ++c)
            sum += v[static_cast<std::size_t>(p * c_in + c)] * w.u[w.at(p, k, c)];
          m[static_cast<std::size_t>(p * c_out + k)] = sum;
        }
      for (std::int64_t k = 0; k < c_out; ++k) {
        std::int32_t t[4][2], out[2][2];
        const auto at = [&](int i, int j) {
          return m[static_cast<std::size_t>((4 * i + j) * c_out + k)];
        };
        for (int i = 0; i < 4; ++i)
          output_transform(at(i, 0), at(i, 1), at(i, 2), at(i, 3), t[i][0], t[i][1]);
        for (int s = 0; s < 2; ++s)
          output_transform(t[0][s], t[1][s], t[2][s], t[3][s], out[0][s], out[1][s]);
        for (int r = 0; r < 2; ++r)
          for (int s = 0; s < 2; ++s)
            y[static_cast<std::size_t>((2 * r + s) * c_out + k)] = out[r][s] / 4;
      }
      for (int r = 0; r < 2; ++r)
        for (int s = 0; s < 2; ++s) {
          const std::int64_t oh = 2 * ty + r, ow = 2 * tx + s;
          if (oh >= oh_n || ow >= ow_n) continue;
          const std::int32_t* from = y.data() + (2 * r + s) * c_out;
          const std::int64_t at = it.image * image_out + (oh * ow_n + ow) * c_out;
          if (q)
            requantize(from, 1, c_out, q->m, q->c, q->lo, q->hi, codes + at);
          else
            std::copy(from, from + c_out, dots + at);
        }
    }
  }
}

// Items [first, last) on one instruction set's kernels: per block of
// tiles, transform, multiply at each position, finish.
void conv_vector(const winograd::Kernels& k, const ConvGeometry& g, const std::uint8_t* nhwc,
                 std::uint8_t pad, const WinogradWeights& w, std::int64_t first, std::int64_t last,
                 const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  const std::int64_t c_in = g.in_channels,
                     image_out = g.out_height() * g.out_width() * g.out_channels;
  const std::int64_t across = tiles_across(g);
  // V + 6: [position][tile][stride bytes]; M: [tile][position][out int32].
  const std::int64_t stride = (c_in + 63) / 64 * 64, out = w.blocks * kWinogradBlock;
  thread_local std::vector<std::uint8_t> v;
  thread_local std::vector<std::int32_t> m;
  v.resize(static_cast<std::size_t>(kPositions * kTiles * stride));
  m.resize(static_cast<std::size_t>(kTiles * kPositions * out));
  const std::int64_t u_block = w.steps * kWinogradBlock * w.group, m_tile = kPositions * out;
  for (std::int64_t item = first; item < last; ++item) {
    const Item it = item_at(g, item);
    const std::uint8_t* image = nhwc + it.image * g.height * g.width * c_in;
    const std::int64_t t0 = it.first, count = it.last - it.first;
    for (std::int64_t i = 0; i < count; ++i)
      k.transform(g, image, pad, (t0 + i) / across, (t0 + i) % across, v.data() + i * stride,
                  kTiles * stride);
    for (int p = 0; p < kPositions; ++p)
      for (std::int64_t b0 = 0; b0 < w.blocks; b0 += k.blocks) {
        const auto nb = static_cast<int>(std::min<std::int64_t>(k.blocks, w.blocks - b0));
        const std::int8_t* u = w.u.data() + (p * w.blocks + b0) * u_block;
        const std::int32_t* start = w.start.data() + p * out + b0 * kWinogradBlock;
        for (std::int64_t r0 = 0; r0 < count; r0 += k.rows) {
          const auto rows = static_cast<int>(std::min<std::int64_t>(k.rows, count - r0));
          k.multiply(rows, nb)(v.data() + (p * kTiles + r0) * stride, stride, u, u_block, w.steps,
                               start, m.data() + r0 * m_tile + p * out + b0 * kWinogradBlock,
                               m_tile);
        }
      }
    for (std::int64_t b = 0; b < w.blocks; ++b)
      k.finish(g, m.data() + b * kWinogradBlock, m_tile, out, b, t0, count, q,
               q ? nullptr : dots + it.image * image_out,
               q ? codes + it.image * image_out : nullptr);
  }
}

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument(what); }

}  // namespace

std::int64_t winograd_items(const ConvGeometry& g) {
  return g.batch * ((tiles_down(g) * tiles_across(g) + kTiles - 1) / kTiles);
}

bool winograd_suits(const ConvGeometry& g) {
  return g.kernel == 3 && g.stride == 1 && g.groups == 1;
}

bool cpu_has_vnni() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

WinogradWeights winograd_weights(const ConvGeometry& g, const std::int8_t* codes, Isa isa) {
  g.check();
  if (!winograd_suits(g))
    invalid("Winograd F(2x2, 3x3) takes 3x3 convolutions of stride 1, ungrouped");
  WinogradWeights w;
  w.geometry = g;
  w.isa = isa;
  w.group = isa == Isa::avx2 ? 2 : 4;
  w.steps = (g.in_channels + w.group - 1) / w.group;
  w.blocks = (g.out_channels + kWinogradBlock - 1) / kWinogradBlock;
  const std::int64_t out = w.blocks * kWinogradBlock;
  w.u.assign(static_cast<std::size_t>(kPositions * out * w.steps * w.group), 0);
  w.start.assign(static_cast<std::size_t>(kPositions * out), 0);
  for (std::int64_t k = 0; k < g.out_channels; ++k)
    for (std::int64_t c = 0; c < g.in_channels; ++c) {
      int window[3][3];
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
          const int code = codes[((k * 3 + a) * 3 + b) * g.in_channels + c];
          if (std::abs(code) > kMaxCode)
            invalid("Winograd kernels take weight codes in [-3, 3], not " + std::to_string(code));
          window[a][b] = code;
        }
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          int u = 0;
          for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) u += kG2[i][a] * window[a][b] * kG2[j][b];
          const int p = 4 * i + j;
          w.u[w.at(p, k, c)] = static_cast<std::int8_t>(u);
          w.start[static_cast<std::size_t>(p * out + k)] -= kOffset * u;
        }
    }
  return w;
}

void winograd_conv(const ConvGeometry& g, const std::uint8_t* nhwc, std::uint8_t pad_code,
                   const WinogradWeights& w, std::int64_t first, std::int64_t last,
                   const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  if (pad_code > kMaxCode) invalid("Winograd kernels take codes in [0, 3], padding too");
#if defined(__x86_64__)
  if (w.isa == Isa::avx512) {
    if (!cpu_has_vnni()) invalid("the Winograd kernel on avx512 needs VNNI, which this CPU lacks");
    conv_vector(winograd::vnni_kernels(), g, nhwc, pad_code, w, first, last, q, dots, codes);
    return;
  }
  if (w.isa == Isa::avx2) {
    if (!cpu_has(Isa::avx2))
      invalid("the Winograd kernel on avx2 needs AVX2, which this CPU lacks");
    conv_vector(winograd::avx2_kernels(), g, nhwc, pad_code, w, first, last, q, dots, codes);
    return;
  }
#endif
  conv_portable(g, nhwc, pad_code, w, first, last, q, dots, codes);
}

}  // namespace qlab::bits
