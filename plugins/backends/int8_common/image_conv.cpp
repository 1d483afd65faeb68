// The int8 image convolution (image_conv.hpp). The AVX2 and AVX-512
// functions carry their own target attributes, so this file builds for any
// x86-64 and image_conv_for() picks among them at run time.
#include "image_conv.hpp"

#include "code_kernels.hpp"

#include <qlab/parallel.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define QLAB_IMAGE_AVX2 __attribute__((target("avx2,fma")))
#define QLAB_IMAGE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#endif

namespace qlab::int8 {
namespace {

constexpr std::int64_t kMaxChannels = 4, kMaxKernel = 11;

struct Shape4 {
  std::int64_t batch, channels, height, width;
};

// What the kernels read, set up once per layer.
struct Layer {
  std::int64_t in = 1, out = 1, kernel = 1, padding = 0;
  std::vector<std::int8_t> weights;  // [out][in][kernel row][kernel column]
  std::vector<std::int32_t> offset;  // per out channel: bias code - z_in sum w
  std::vector<float> m;              // per out channel: s_in s_w / s_out
  float zero_point = 0, lo = 0, hi = 255;
  std::uint8_t pad_code = 0;  // z_in: a real 0 in the border

  std::int64_t out_height(const Shape4& s) const { return s.height + 2 * padding - kernel + 1; }
  std::int64_t out_width(const Shape4& s) const { return s.width + 2 * padding - kernel + 1; }
};

// round(m dot + z) clamped to [lo, hi], in float as the vector code does it
// (one fused multiply-add, rounding half to even).
inline std::uint8_t code_of(const Layer& l, std::int64_t c, std::int32_t dot) {
  const float v = std::fma(l.m[c], static_cast<float>(dot), l.zero_point);
  return static_cast<std::uint8_t>(std::nearbyint(std::min(std::max(v, l.lo), l.hi)));
}

// Image n's dots and codes, one output pixel at a time, into its map `out`
// ([row][column][channel]).
void image_portable(const Layer& l, const Shape4& s, const std::uint8_t* nhwc, std::int64_t n,
                    std::uint8_t* out) {
  const std::int64_t oh_count = l.out_height(s), ow_count = l.out_width(s);
  for (std::int64_t oh = 0; oh < oh_count; ++oh)
    for (std::int64_t ow = 0; ow < ow_count; ++ow)
      for (std::int64_t c = 0; c < l.out; ++c) {
        std::int32_t dot = l.offset[c];
        for (std::int64_t ci = 0; ci < l.in; ++ci)
          for (std::int64_t kh = 0; kh < l.kernel; ++kh)
            for (std::int64_t kw = 0; kw < l.kernel; ++kw) {
              const std::int64_t y = oh + kh - l.padding, x = ow + kw - l.padding;
              const bool inside = y >= 0 && y < s.height && x >= 0 && x < s.width;
              const std::int32_t a =
                  inside ? nhwc[((n * s.height + y) * s.width + x) * s.channels + ci] : l.pad_code;
              dot += a * l.weights[((c * l.in + ci) * l.kernel + kh) * l.kernel + kw];
            }
        out[(oh * ow_count + ow) * l.out + c] = code_of(l, c, dot);
      }
}

#if defined(__x86_64__)

// The kernels' taps, each R weights of one 32-bit element, in order: per
// input channel, each group of R kernel rows at each kernel column, then
// each kernel row left at each group of R kernel columns. fn(ci, kh, kw,
// along): the tap's first weight; `along`: its R weights run along the
// kernel row, else down the column.
template <typename Fn>
void for_each_tap(const Layer& l, int R, Fn&& fn) {
  const std::int64_t groups = l.kernel / R, runs = (l.kernel + R - 1) / R;
  for (std::int64_t ci = 0; ci < l.in; ++ci) {
    for (std::int64_t g = 0; g < groups; ++g)
      for (std::int64_t kw = 0; kw < l.kernel; ++kw) fn(ci, g * R, kw, false);
    for (std::int64_t kh = groups * R; kh < l.kernel; ++kh)
      for (std::int64_t q = 0; q < runs; ++q) fn(ci, kh, q * R, true);
  }
}

// Image n repacked for a kernel of `lanes` columns a register: per input
// channel, a map of 32-bit elements, element (y, x) holding the codes of
// rows y .. y + R - 1 at column x of the padded image (T: uint8 for R = 4,
// uint16 for R = 2), and a map of `row` elements holding row y's codes at
// columns x .. x + R - 1. A kernel's rows go R at a time through the first;
// the last kernel % R rows, which would leave most of an element's rows
// idle, R columns at a time through the second. Rows and columns past the
// padded image meet only zero weights or lanes past the output's width:
// what they hold is never used. `taps`: where each tap of channel_taps'
// order reads, from the element of the output pixel's own (row, column),
// so that the kernels' tap loop is one flat run of loads.
template <typename T>
struct Rows {
  static constexpr int R = 4 / sizeof(T);
  std::int64_t height, width;       // the padded image; elements of a row (a multiple of 16)
  std::vector<std::uint8_t> plane;  // per channel: the padded image, height + R - 1 rows
  std::int64_t map;                 // elements of the first map; the second follows
  std::vector<std::uint32_t> elements;
  std::vector<std::int64_t> taps;

  Rows(const Layer& l, const Shape4& s, std::int64_t lanes)
      : height(s.height + 2 * l.padding),
        width((s.width + 2 * l.padding + lanes + 15) / 16 * 16),
        plane(static_cast<std::size_t>(l.in * (height + R - 1) * width), l.pad_code),
        map(l.in * height * width),
        elements(static_cast<std::size_t>(l.kernel % R ? 2 * map : map), 0) {
    for_each_tap(l, R, [&](std::int64_t ci, std::int64_t kh, std::int64_t kw, bool along) {
      taps.push_back((along ? map : 0) + (ci * height + kh) * width + kw);
    });
  }

  void fill(const Layer& l, const Shape4& s, const std::uint8_t* nhwc, std::int64_t n) {
    for (std::int64_t ci = 0; ci < l.in; ++ci) {
      std::uint8_t* p = plane.data() + ci * (height + R - 1) * width;
      // The image's rows; the border keeps the pad code it was made with.
      for (std::int64_t iy = 0; iy < s.height; ++iy) {
        const std::uint8_t* src = nhwc + ((n * s.height + iy) * s.width) * s.channels + ci;
        std::uint8_t* dst = p + (iy + l.padding) * width + l.padding;
        if (s.channels == 1)
          std::memcpy(dst, src, static_cast<std::size_t>(s.width));
        else
          for (std::int64_t ix = 0; ix < s.width; ++ix) dst[ix] = src[ix * s.channels];
      }
      std::uint32_t* first = elements.data() + ci * height * width;
      for (std::int64_t y = 0; y < height; ++y)
        for (std::int64_t x = 0; x < width; x += 16) {
          interleave(p + y * width + x, width, first + y * width + x);
          if (static_cast<std::int64_t>(elements.size()) > map)
            interleave(p + y * width + x, 1, first + map + y * width + x);
        }
    }
  }
  // The element of output pixel (oh, ow), from which `taps` count.
  const std::uint32_t* at(std::int64_t oh, std::int64_t ow) const {
    return elements.data() + oh * width + ow;
  }

 private:
  // 16 columns of R codes `step` bytes apart (R rows, or R columns of a
  // row) into 16 elements.
  void interleave(const std::uint8_t* p, std::int64_t step, std::uint32_t* out) const {
    const auto load = [&](int r) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * step));
    };
    __m128i e[4];
    if constexpr (R == 4) {
      const __m128i a = load(0), b = load(1), c = load(2), d = load(3);
      const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b),
                    cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
      e[0] = _mm_unpacklo_epi16(ab_lo, cd_lo);
      e[1] = _mm_unpackhi_epi16(ab_lo, cd_lo);
      e[2] = _mm_unpacklo_epi16(ab_hi, cd_hi);
      e[3] = _mm_unpackhi_epi16(ab_hi, cd_hi);
    } else {
      const __m128i zero = _mm_setzero_si128(), a = load(0), b = load(1);
      const __m128i a_lo = _mm_unpacklo_epi8(a, zero), a_hi = _mm_unpackhi_epi8(a, zero),
                    b_lo = _mm_unpacklo_epi8(b, zero), b_hi = _mm_unpackhi_epi8(b, zero);
      e[0] = _mm_unpacklo_epi16(a_lo, b_lo);
      e[1] = _mm_unpackhi_epi16(a_lo, b_lo);
      e[2] = _mm_unpacklo_epi16(a_hi, b_hi);
      e[3] = _mm_unpackhi_epi16(a_hi, b_hi);
    }
    for (int k = 0; k < 4; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * k), e[k]);
  }
};

// Output channel c's weights as the kernels read them (for_each_tap), R
// of type T (int8 or int16) to an element, those past the kernel 0.
template <typename T>
std::vector<std::uint32_t> channel_taps(const Layer& l, std::int64_t c) {
  constexpr int R = 4 / sizeof(T);
  std::vector<std::uint32_t> taps;
  for_each_tap(l, R, [&](std::int64_t ci, std::int64_t kh, std::int64_t kw, bool along) {
    T parts[R] = {};
    for (int r = 0; r < R; ++r) {
      const std::int64_t y = along ? kh : kh + r, x = along ? kw + r : kw;
      if (y < l.kernel && x < l.kernel)
        parts[r] = static_cast<T>(l.weights[((c * l.in + ci) * l.kernel + y) * l.kernel + x]);
    }
    std::uint32_t element;
    std::memcpy(&element, parts, sizeof element);
    taps.push_back(element);
  });
  return taps;
}

// A chunk of `lanes` output columns is lanes * out bytes of the output row
// in (column, channel) order: `out` registers of `lanes` bytes each. Lane j
// of register v computes byte e = lanes v + j of the chunk, the dot of
// column e / out and channel e % out, so that the codes leave in one store
// per register. Per register, what its lanes read: the column each takes
// from a load of `lanes` columns, the weights of each lane's channel
// (channel_taps), and each lane's channel's offset and m.
template <typename T>
struct Lanes {
  std::int64_t lanes;
  std::int64_t taps;  // elements per register
  std::vector<std::int32_t> column, offset;
  std::vector<float> m;
  std::vector<std::uint32_t> weights;  // [register][tap][lane]

  Lanes(const Layer& l, std::int64_t lanes_) : lanes(lanes_) {
    std::vector<std::vector<std::uint32_t>> channels;
    for (std::int64_t c = 0; c < l.out; ++c) channels.push_back(channel_taps<T>(l, c));
    taps = static_cast<std::int64_t>(channels[0].size());
    for (std::int64_t e = 0; e < l.out * lanes; ++e) {
      const std::int64_t c = e % l.out;
      column.push_back(static_cast<std::int32_t>(e / l.out));
      offset.push_back(l.offset[c]);
      m.push_back(l.m[c]);
    }
    weights.resize(static_cast<std::size_t>(l.out * taps * lanes));
    for (std::int64_t v = 0; v < l.out; ++v)
      for (std::int64_t j = 0; j < lanes; ++j) {
        const auto& element = channels[static_cast<std::size_t>((v * lanes + j) % l.out)];
        for (std::int64_t tap = 0; tap < taps; ++tap)
          weights[static_cast<std::size_t>((v * taps + tap) * lanes + j)] = element[tap];
      }
  }
};

// AVX2's layout (image_conv.hpp says why): a register per output channel,
// 8 columns in its lanes, so that one load of 8 columns serves every
// channel with no permute; the codes are transposed to (column, channel)
// order as they are stored.
// Channels go in blocks of up to 8 registers. Past 8 channels, the last
// block ends at the last channel, overlapping the one before, so that every
// block stores 8 whole bytes a column.
struct Channels {
  // How many taps' pair sums add up in 16 bits before they are widened to
  // 32, where the taps are byte pairs (bytes()); 0 where they are not.
  std::int64_t group;
  std::int64_t taps;                 // elements a channel
  std::int64_t block;                // channels a block
  std::vector<std::int64_t> firsts;  // each block's first channel
  // [channel][tap][lane]: each element in all 8 lanes, so that the
  // multiply-add reads it as its memory operand (AVX2 has no broadcast
  // operand; a separate broadcast costs a micro-op per channel and tap).
  std::vector<std::uint32_t> weights;

  explicit Channels(const Layer& l)
      : group(byte_group(l)),
        taps(static_cast<std::int64_t>(bytes() ? channel_taps<std::int8_t>(l, 0).size()
                                               : channel_taps<std::int16_t>(l, 0).size())),
        block(std::min<std::int64_t>(l.out, 8)) {
    for (std::int64_t c = 0; c < l.out; c += block) firsts.push_back(std::min(c, l.out - block));
    for (std::int64_t c = 0; c < l.out; ++c) {
      for (std::uint32_t element :
           bytes() ? channel_taps<std::int8_t>(l, c) : channel_taps<std::int16_t>(l, c))
        weights.insert(weights.end(), 8, element);
    }
  }

  // Taps of 4 int8 weights on 4 uint8 codes (Rows<uint8_t>), by vpmaddubsw,
  // where no 16-bit sum can saturate; else of 2 int16 on 2 uint16 codes, by
  // vpmaddwd.
  bool bytes() const { return group > 0; }

  // vpmaddubsw sums two uint8 x int8 products in 16 bits, saturating: with
  // codes up to 255, exact while the two weights' magnitudes sum to at most
  // 128 (weights of 7 bits or fewer always do), and taps may add up in 16
  // bits while 255 times their pairs' sums stays under 2^15. The taps a
  // group, or 0 where a pair of weights is too large.
  static std::int64_t byte_group(const Layer& l) {
    std::int64_t widest = 1;  // the largest |w_a| + |w_b| of a 16-bit lane
    for (std::int64_t c = 0; c < l.out; ++c)
      for (std::uint32_t element : channel_taps<std::int8_t>(l, c)) {
        std::int8_t w[4];
        std::memcpy(w, &element, sizeof w);
        widest = std::max<std::int64_t>(
            {widest, std::abs(w[0]) + std::abs(w[1]), std::abs(w[2]) + std::abs(w[3])});
      }
    return widest > 128 ? 0 : 32767 / (255 * widest);
  }
};

// Eight columns of 8 channels' codes, 8 bytes a column (its channels):
// columns 0, 1 | 4, 5 in `low`'s 128-bit halves, 2, 3 | 6, 7 in `high`'s.
struct Columns {
  __m256i low, high;
};
// Where column j's 8 bytes lie among Columns stored as 8 words, and among
// words in column order.
constexpr int kColumnAt[8] = {0, 1, 4, 5, 2, 3, 6, 7};
constexpr int kInOrder[8] = {0, 1, 2, 3, 4, 5, 6, 7};

// Eight columns' codes of V <= 8 channels (q[v], int32 in [0, 255]; those
// past V zero) transposed into (column, channel) order.
QLAB_IMAGE_AVX2 inline Columns transpose_columns(const __m256i (&q)[8]) {
  // Per 128-bit half h: 4 bytes (columns 4h .. 4h + 3) of channels 0-3, then
  // a 4x4 byte transpose: 4 channels of each column.
  const __m256i low = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]),
                                          _mm256_packus_epi32(q[2], q[3])),
                high = _mm256_packus_epi16(_mm256_packus_epi32(q[4], q[5]),
                                           _mm256_packus_epi32(q[6], q[7]));
  const __m256i transpose = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                             0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i first = _mm256_shuffle_epi8(low, transpose),
                second = _mm256_shuffle_epi8(high, transpose);
  return {_mm256_unpacklo_epi32(first, second), _mm256_unpackhi_epi32(first, second)};
}

// Columns [from, from + columns) of 8-byte words, column j's at words[at[j]],
// stored `stride` bytes a column: 8 bytes a column, the channels past the
// first V landing on the columns after, stored after it; none past the
// row's `room` bytes from dst.
inline void store_columns(const std::uint64_t* words, const int* at, int from, std::int64_t columns,
                          std::uint8_t* dst, std::int64_t room, std::int64_t stride) {
  std::int64_t j = 0;
  for (; j < columns && room - j * stride >= 8; ++j)
    std::memcpy(dst + j * stride, &words[at[from + j]], sizeof(std::uint64_t));
  for (; j < columns; ++j)
    std::memcpy(dst + j * stride, &words[at[from + j]],
                static_cast<std::size_t>(room - j * stride));
}

// store_columns of Columns.
QLAB_IMAGE_AVX2 inline void store_columns(const Columns& c, int from, std::int64_t columns,
                                          std::uint8_t* dst, std::int64_t room,
                                          std::int64_t stride) {
  alignas(32) std::uint64_t words[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(words), c.low);
  _mm256_store_si256(reinterpret_cast<__m256i*>(words + 4), c.high);
  store_columns(words, kColumnAt, from, columns, dst, room, stride);
}

// Per channel, the sum of the two columns in each 128-bit half of
// `columns`, in 16 bits.
QLAB_IMAGE_AVX2 inline __m256i pair_sums(__m256i columns) {
  const __m256i zero = _mm256_setzero_si256();
  return _mm256_add_epi16(_mm256_unpacklo_epi8(columns, zero), _mm256_unpackhi_epi8(columns, zero));
}

// The codes of 2x2 windows from their sums of 4 codes (16 bits), as
// avg_pool_codes rounds them: the mean minus the zero point z, rounded half
// to even. For q = sum >> 2 and r = sum & 3 that is q plus one past a half
// (r = 3), or at a half (r = 2) where q - z is odd.
QLAB_IMAGE_AVX2 inline __m256i window_codes(__m256i sum, __m256i z) {
  const __m256i one = _mm256_set1_epi16(1), two = _mm256_set1_epi16(2);
  const __m256i q = _mm256_srli_epi16(sum, 2), r = _mm256_and_si256(sum, _mm256_set1_epi16(3));
  const __m256i odd = _mm256_and_si256(_mm256_xor_si256(q, z), one);
  return _mm256_sub_epi16(q, _mm256_cmpgt_epi16(_mm256_add_epi16(r, odd), two));
}

// What channels_avx2 holds for a block of V channels: its weights, and each
// channel's offset and m in all 8 lanes.
template <int V>
struct Block {
  const std::uint32_t* w;
  std::int64_t taps;
  std::int64_t group;      // Channels::group
  const std::int64_t* at;  // Rows::taps
  __m256i offset[V];
  __m256 m[V];
  __m256 lo, hi, zero_point;
};

// The taps' 8 lanes from `a`, lanes 4-7 from `a + upper`.
QLAB_IMAGE_AVX2 __attribute__((always_inline)) inline __m256i load_lanes(const std::uint32_t* p,
                                                                         std::int64_t upper) {
  return upper == 4 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                    : _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + upper),
                                          reinterpret_cast<const __m128i*>(p));
}

// Channel v's weights of a tap, in all 8 lanes.
template <int V>
QLAB_IMAGE_AVX2 __attribute__((always_inline)) inline __m256i tap_weights(const Block<V>& b, int v,
                                                                          std::int64_t tap) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.w + (v * b.taps + tap) * 8));
}

// The codes of 8 lanes, lanes 0-3 taking their taps from `a` and 4-7 from
// `a + upper` (4: the next 4 columns; else the next row's), transposed
// (transpose_columns). kBytes: the taps are Channels::bytes's.
template <int V, bool kBytes>
QLAB_IMAGE_AVX2 __attribute__((always_inline)) inline Columns chunk_codes(const Block<V>& b,
                                                                          const std::uint32_t* a,
                                                                          std::int64_t upper) {
  __m256i acc[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) acc[v] = b.offset[v];
  if constexpr (kBytes) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (std::int64_t first = 0; first < b.taps; first += b.group) {
      __m256i pairs[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) pairs[v] = _mm256_setzero_si256();
      const std::int64_t last = std::min(b.taps, first + b.group);
      for (std::int64_t tap = first; tap < last; ++tap) {
        const __m256i x = load_lanes(a + b.at[tap], upper);
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
          pairs[v] = _mm256_add_epi16(pairs[v], _mm256_maddubs_epi16(x, tap_weights(b, v, tap)));
      }
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v)
        acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(pairs[v], ones));
    }
  } else {
    for (std::int64_t tap = 0; tap < b.taps; ++tap) {
      const __m256i x = load_lanes(a + b.at[tap], upper);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v)
        acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(x, tap_weights(b, v, tap)));
    }
  }
  __m256i q[8];
#pragma GCC unroll 8
  for (int v = 0; v < 8; ++v) {
    if (v >= V) {
      q[v] = _mm256_setzero_si256();
      continue;
    }
    const __m256 y = _mm256_fmadd_ps(b.m[v], _mm256_cvtepi32_ps(acc[v]), b.zero_point);
    q[v] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(y, b.lo), b.hi));
  }
  return transpose_columns(q);
}

// Block c0's constants for channels_avx2.
template <int V, typename T>
QLAB_IMAGE_AVX2 inline Block<V> block_at(const Layer& l, const Channels& t, const Rows<T>& rows,
                                         std::int64_t c0) {
  Block<V> b;
  b.w = t.weights.data() + c0 * t.taps * 8;
  b.taps = t.taps;
  b.group = t.group;
  b.at = rows.taps.data();
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    b.offset[v] = _mm256_set1_epi32(l.offset[c0 + v]);
    b.m[v] = _mm256_set1_ps(l.m[c0 + v]);
  }
  b.lo = _mm256_set1_ps(l.lo);
  b.hi = _mm256_set1_ps(l.hi);
  b.zero_point = _mm256_set1_ps(l.zero_point);
  return b;
}

// Channels [c0, c0 + V) of the image's output map `out` ([row][column]
// [channel]), 8 columns a step. A row's last 4 or fewer columns share a
// register with the next row's, lanes 0-3 one row's and 4-7 the next's, so
// that LeNet's 28 columns take 3.5 registers of taps a row, not 4.
template <int V, typename T>
QLAB_IMAGE_AVX2 void channels_avx2(const Layer& l, const Shape4& s, const Channels& t,
                                   const Rows<T>& rows, std::int64_t c0, std::uint8_t* out) {
  constexpr std::int64_t kLanes = 8;
  constexpr bool kBytes = std::is_same_v<T, std::uint8_t>;
  const std::int64_t oh_count = l.out_height(s), ow_count = l.out_width(s);
  const Block<V> b = block_at<V>(l, t, rows, c0);
  const std::int64_t whole = ow_count / kLanes * kLanes, tail = ow_count - whole;
  const auto dst = [&](std::int64_t oh, std::int64_t ow) {
    return out + (oh * ow_count + ow) * l.out + c0;
  };
  const auto room = [&](std::int64_t ow) { return (ow_count - ow) * l.out - c0; };
  // A shared register's codes for the odd row, stored after that row's
  // whole registers, whose stores spill onto its first column.
  Columns shared{};
  for (std::int64_t oh = 0; oh < oh_count; ++oh) {
    for (std::int64_t ow = 0; ow < whole; ow += kLanes)
      store_columns(chunk_codes<V, kBytes>(b, rows.at(oh, ow), 4), 0, kLanes, dst(oh, ow), room(ow),
                    l.out);
    if (tail == 0) continue;
    if (tail <= 4 && oh % 2 == 1) {
      store_columns(shared, 4, tail, dst(oh, whole), room(whole), l.out);
    } else if (tail <= 4 && oh + 1 < oh_count) {
      shared = chunk_codes<V, kBytes>(b, rows.at(oh, whole), rows.width);
      store_columns(shared, 0, tail, dst(oh, whole), room(whole), l.out);
    } else {
      store_columns(chunk_codes<V, kBytes>(b, rows.at(oh, whole), 4), 0, tail, dst(oh, whole),
                    room(whole), l.out);
    }
  }
}

// The codes of `count` <= 4 pooled columns from their windows' sums (16
// bits; columns 0 | 2 in `even`'s halves, 1 | 3 in `odd`'s), stored as
// store_columns does.
QLAB_IMAGE_AVX2 __attribute__((always_inline)) inline void store_windows(
    __m256i even, __m256i odd, __m256i zero_point, std::int64_t count, std::uint8_t* dst,
    std::int64_t room, std::int64_t stride) {
  alignas(32) std::uint64_t words[4];
  _mm256_store_si256(
      reinterpret_cast<__m256i*>(words),
      _mm256_packus_epi16(window_codes(even, zero_point), window_codes(odd, zero_point)));
  store_columns(words, kInOrder, 0, count, dst, room, stride);
}

// channels_avx2 for all of a layer of V <= 8 channels, then the 2x2
// average pooling at stride 2 of its map, in registers: per pair of rows,
// each chunk's two rows of codes (or, for a row's last 4 or fewer columns,
// the one register they share) summed to windows and rounded
// (window_codes). `out`: the pooled map. `z`: the codes' zero point.
template <int V, typename T>
QLAB_IMAGE_AVX2 void pooled_channels_avx2(const Layer& l, const Shape4& s, const Channels& t,
                                          const Rows<T>& rows, std::uint8_t z, std::uint8_t* out) {
  constexpr std::int64_t kLanes = 8;
  constexpr bool kBytes = std::is_same_v<T, std::uint8_t>;
  const std::int64_t oh_count = l.out_height(s), ow_count = l.out_width(s);
  const Block<V> b = block_at<V>(l, t, rows, 0);
  const __m256i zero_point = _mm256_set1_epi16(z);
  const std::int64_t whole = ow_count / kLanes * kLanes, tail = ow_count - whole,
                     pooled_width = ow_count / 2;
  for (std::int64_t ph = 0; ph < oh_count / 2; ++ph) {
    const std::int64_t top = 2 * ph, bottom = top + 1;
    // The whole chunks, and a tail of 5 to 7 columns: each row's codes.
    for (std::int64_t ow = 0; ow < ow_count - (tail <= 4 ? tail : 0); ow += kLanes) {
      const Columns up = chunk_codes<V, kBytes>(b, rows.at(top, ow), 4),
                    down = chunk_codes<V, kBytes>(b, rows.at(bottom, ow), 4);
      store_windows(_mm256_add_epi16(pair_sums(up.low), pair_sums(down.low)),
                    _mm256_add_epi16(pair_sums(up.high), pair_sums(down.high)), zero_point,
                    std::min<std::int64_t>(4, pooled_width - ow / 2),
                    out + (ph * pooled_width + ow / 2) * l.out, (pooled_width - ow / 2) * l.out,
                    l.out);
    }
    if (tail < 2 || tail > 4) continue;
    // The two rows' last columns in one register: the top row's windows in
    // each half's low lanes, the bottom row's in the high.
    const Columns both = chunk_codes<V, kBytes>(b, rows.at(top, whole), rows.width);
    const __m256i even = pair_sums(both.low), odd = pair_sums(both.high);
    store_windows(_mm256_add_epi16(even, _mm256_permute2x128_si256(even, even, 0x01)),
                  _mm256_add_epi16(odd, _mm256_permute2x128_si256(odd, odd, 0x01)), zero_point,
                  tail / 2, out + (ph * pooled_width + whole / 2) * l.out,
                  (pooled_width - whole / 2) * l.out, l.out);
  }
}

// GCC 12 warns of the undefined source operand inside its own AVX-512
// intrinsics (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning, which clang would warn is unknown
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Registers [v0, v0 + V) of the chunks at columns [ow_first, ow_last) of
// every row of the image's output map `out`.
template <int V>
QLAB_IMAGE_AVX512 void registers_avx512(const Layer& l, const Shape4& s,
                                        const Lanes<std::int8_t>& t, const Rows<std::uint8_t>& rows,
                                        std::int64_t v0, std::int64_t ow_first,
                                        std::int64_t ow_last, std::uint8_t* out) {
  constexpr std::int64_t kLanes = 16;
  const std::int64_t oh_count = l.out_height(s), ow_count = l.out_width(s);
  __m512i column[V], offset[V];
  __m512 m[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    const std::int64_t at = (v0 + v) * kLanes;
    column[v] = _mm512_loadu_si512(t.column.data() + at);
    offset[v] = _mm512_loadu_si512(t.offset.data() + at);
    m[v] = _mm512_loadu_ps(t.m.data() + at);
  }
  const __m512 lo = _mm512_set1_ps(l.lo), hi = _mm512_set1_ps(l.hi),
               zero_point = _mm512_set1_ps(l.zero_point);
  for (std::int64_t oh = 0; oh < oh_count; ++oh)
    for (std::int64_t ow = ow_first; ow < ow_last; ow += kLanes) {
      __m512i acc[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[v] = offset[v];
      const std::uint32_t* w = t.weights.data() + v0 * t.taps * kLanes;
      const std::int64_t* at = rows.taps.data();
      const std::uint32_t* a = rows.at(oh, ow);
      for (std::int64_t tap = 0; tap < t.taps; ++tap) {
        const __m512i x = _mm512_loadu_si512(a + at[tap]);
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
          acc[v] = _mm512_dpbusd_epi32(acc[v], _mm512_permutexvar_epi32(column[v], x),
                                       _mm512_loadu_si512(w + (v * t.taps + tap) * kLanes));
      }
      const std::int64_t bytes = std::min(kLanes, ow_count - ow) * l.out;
      std::uint8_t* dst = out + (oh * ow_count + ow) * l.out;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const std::int64_t first = (v0 + v) * kLanes;
        if (first >= bytes) continue;
        const __m512 y = _mm512_fmadd_ps(m[v], _mm512_cvtepi32_ps(acc[v]), zero_point);
        const __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(y, lo), hi));
        const auto mask = first + kLanes <= bytes
                              ? static_cast<__mmask16>(0xffff)
                              : static_cast<__mmask16>((1u << (bytes - first)) - 1);
        _mm_mask_storeu_epi8(dst + first, mask, _mm512_cvtusepi32_epi8(q));
      }
    }
}

#pragma GCC diagnostic pop

// fn(V) for V in 1 .. 8, V a constant for the kernels' accumulator arrays.
template <typename Fn>
void with_constant(std::int64_t v, Fn&& fn) {
  switch (v) {
    case 1:
      return fn(std::integral_constant<int, 1>{});
    case 2:
      return fn(std::integral_constant<int, 2>{});
    case 3:
      return fn(std::integral_constant<int, 3>{});
    case 4:
      return fn(std::integral_constant<int, 4>{});
    case 5:
      return fn(std::integral_constant<int, 5>{});
    case 6:
      return fn(std::integral_constant<int, 6>{});
    case 7:
      return fn(std::integral_constant<int, 7>{});
    default:
      return fn(std::integral_constant<int, 8>{});
  }
}

#endif

class ImageConv {
 public:
  ImageConv(const LayerOffer& o, ImageConvIsa isa, bool average_2x2)
      : isa_(isa), average_2x2_(average_2x2) {
    const auto [codes, scale] = int8_codes(o.layer);
    l_.out = codes.size(0);
    l_.in = codes.size(1);
    l_.kernel = codes.size(2);
    l_.padding = o.node.attrs.padding;
    const auto w = codes.contiguous();
    l_.weights.assign(w.data_ptr<std::int8_t>(), w.data_ptr<std::int8_t>() + w.numel());
    const double s_in = o.input.scale.item<double>();
    // The input's uint8 codes [0, qmax - qmin] and its zero point, shifted alike.
    const auto z_in = o.input.zero_point.item<std::int64_t>() - o.input.qmin;
    l_.pad_code = static_cast<std::uint8_t>(z_in);
    const auto sums = codes.to(torch::kInt64).sum({1, 2, 3});
    const auto s_w = scale.to(torch::kFloat64).expand({l_.out}).contiguous();
    const torch::Tensor bias = o.layer.bias.defined()
                                   ? int32_bias(o.layer, s_in).codes.to(torch::kInt64)
                                   : torch::zeros({l_.out}, torch::kInt64);
    for (std::int64_t c = 0; c < l_.out; ++c) {
      l_.offset.push_back(static_cast<std::int32_t>(bias[c].item<std::int64_t>() -
                                                    z_in * sums[c].item<std::int64_t>()));
      l_.m.push_back(static_cast<float>(s_in * s_w[c].item<double>() / o.out_scale));
    }
    out_scale_ = o.out_scale;
    out_zero_point_ = o.out_zero_point;
    l_.zero_point = static_cast<float>(o.out_zero_point);
    const bool relu = o.node.attrs.activation != Activation::none;
    l_.lo = relu ? static_cast<float>(std::max<std::int64_t>(o.out_zero_point, 0)) : 0.0f;
    l_.hi = o.out_qmax;
#if defined(__x86_64__)
    if (isa_ == ImageConvIsa::avx2) avx2_.emplace(l_);
    if (isa_ == ImageConvIsa::avx512_vnni) avx512_.emplace(l_, 16);
#endif
    bool byte_pairs = false;
#if defined(__x86_64__)
    byte_pairs = avx2_ && avx2_->bytes();
#endif
    name_ =
        fmt::format("qlab::conv2d{} over {} input channel{}{} ({}{})", relu ? "_relu" : "", l_.in,
                    l_.in == 1 ? "" : "s", average_2x2_ ? ", then its 2x2 average pooling" : "",
                    to_string(isa_), byte_pairs ? ", byte pairs" : "");
  }

  const std::string& name() const { return name_; }

  torch::Tensor operator()(const torch::Tensor& x, bool parallel) const {
    if (!x.is_quantized() || x.dim() != 4 || x.size(1) != l_.in ||
        x.size(2) + 2 * l_.padding < l_.kernel || x.size(3) + 2 * l_.padding < l_.kernel)
      throw std::invalid_argument(
          fmt::format("{} takes a quint8 [N, {}, H, W] input of at least "
                      "the kernel's size, not [{}]",
                      name_, l_.in, fmt::join(x.sizes(), ", ")));
    const Shape4 s{x.size(0), x.size(1), x.size(2), x.size(3)};
    const std::int64_t oh = l_.out_height(s), ow = l_.out_width(s);
    if (average_2x2_ && (oh < 2 || ow < 2))
      throw std::invalid_argument(
          fmt::format("{} pools a map of at least 2x2, not the {}x{} of input [{}]", name_, oh, ow,
                      fmt::join(x.sizes(), ", ")));
    const auto nhwc = x.contiguous(at::MemoryFormat::ChannelsLast);
    const auto* codes = reinterpret_cast<const std::uint8_t*>(nhwc.data_ptr<c10::quint8>());
    const std::int64_t out_height = average_2x2_ ? oh / 2 : oh,
                       out_width = average_2x2_ ? ow / 2 : ow;
    const std::int64_t map = oh * ow * l_.out, pooled = out_height * out_width * l_.out;
    auto out = at::_empty_affine_quantized({s.batch, l_.out, out_height, out_width},
                                           at::device(at::kCPU).dtype(torch::kQUInt8), out_scale_,
                                           out_zero_point_, at::MemoryFormat::ChannelsLast);
    auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
    for_ranges(s.batch, 1, parallel, [&](std::int64_t first, std::int64_t last) {
#if defined(__x86_64__)
      if (average_2x2_ && isa_ == ImageConvIsa::avx2 && l_.out <= 8) {
        with_avx2_rows(s, [&](auto& rows) {
          for (std::int64_t n = first; n < last; ++n) {
            rows.fill(l_, s, codes, n);
            with_constant(l_.out, [&](auto v) {
              pooled_channels_avx2<decltype(v)::value>(l_, s, *avx2_, rows,
                                                       static_cast<std::uint8_t>(out_zero_point_),
                                                       dst + n * pooled);
            });
          }
        });
        return;
      }
#endif
      // Else each image's map goes through a buffer of one map, which stays
      // in L1 for the pooling to read.
      std::vector<std::uint8_t> buffer(average_2x2_ ? static_cast<std::size_t>(map) : 0), scratch;
      for_images(
          s, codes, first, last,
          [&](std::int64_t n) { return average_2x2_ ? buffer.data() : dst + n * map; },
          [&](std::int64_t n) {
            if (average_2x2_)
              average_2x2_codes(buffer.data(), oh, ow, l_.out,
                                static_cast<std::uint8_t>(out_zero_point_), dst + n * pooled,
                                scratch);
          });
    });
    return out;
  }

 private:
#if defined(__x86_64__)
  // fn(rows): the AVX2 kernels' repacked image, of the codes their taps take
  // (Channels::bytes).
  template <typename Fn>
  void with_avx2_rows(const Shape4& s, Fn&& fn) const {
    if (avx2_->bytes()) {
      Rows<std::uint8_t> rows(l_, s, 8);
      fn(rows);
    } else {
      Rows<std::uint16_t> rows(l_, s, 8);
      fn(rows);
    }
  }
#endif

  // Images [first, last) of the batch, each into the map map_of(n), then
  // done(n).
  template <typename MapOf, typename Done>
  void for_images(const Shape4& s, const std::uint8_t* codes, std::int64_t first, std::int64_t last,
                  MapOf&& map_of, Done&& done) const {
#if defined(__x86_64__)
    if (isa_ == ImageConvIsa::avx2) {
      with_avx2_rows(s, [&](auto& rows) {
        for (std::int64_t n = first; n < last; ++n) {
          rows.fill(l_, s, codes, n);
          for (std::int64_t c0 : avx2_->firsts)
            with_constant(avx2_->block, [&](auto v) {
              channels_avx2<decltype(v)::value>(l_, s, *avx2_, rows, c0, map_of(n));
            });
          done(n);
        }
      });
      return;
    }
    if (isa_ == ImageConvIsa::avx512_vnni) {
      Rows<std::uint8_t> rows(l_, s, 16);
      // Registers [v0, v0 + V) of every chunk, V up to 8 at a time so that
      // their accumulators stay in registers; of a row's last chunk, of
      // fewer columns, only the registers its bytes fill.
      const std::int64_t ow_count = l_.out_width(s), whole = ow_count / 16 * 16,
                         tail_registers = ((ow_count - whole) * l_.out + 15) / 16;
      for (std::int64_t n = first; n < last; ++n) {
        rows.fill(l_, s, codes, n);
        std::uint8_t* image = map_of(n);
        for (std::int64_t v0 = 0; v0 < l_.out; v0 += 8) {
          if (whole > 0)
            with_constant(std::min<std::int64_t>(8, l_.out - v0), [&](auto v) {
              registers_avx512<decltype(v)::value>(l_, s, *avx512_, rows, v0, 0, whole, image);
            });
          if (tail_registers > v0)
            with_constant(std::min<std::int64_t>(8, tail_registers - v0), [&](auto v) {
              registers_avx512<decltype(v)::value>(l_, s, *avx512_, rows, v0, whole, ow_count,
                                                   image);
            });
        }
        done(n);
      }
      return;
    }
#endif
    for (std::int64_t n = first; n < last; ++n) {
      image_portable(l_, s, codes, n, map_of(n));
      done(n);
    }
  }

  ImageConvIsa isa_;
  bool average_2x2_;
  Layer l_;
#if defined(__x86_64__)
  std::optional<Channels> avx2_;
  std::optional<Lanes<std::int8_t>> avx512_;
#endif
  double out_scale_ = 1;
  std::int64_t out_zero_point_ = 0;
  std::string name_;
};

}  // namespace

const char* to_string(ImageConvIsa isa) {
  switch (isa) {
    case ImageConvIsa::avx512_vnni:
      return "avx512 vnni";
    case ImageConvIsa::avx2:
      return "avx2";
    default:
      return "portable";
  }
}

bool cpu_has(ImageConvIsa isa) {
#if defined(__x86_64__)
  if (isa == ImageConvIsa::avx512_vnni)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (isa == ImageConvIsa::avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == ImageConvIsa::portable;
}

std::optional<LayerKernel> image_conv_for(const LayerOffer& o, std::optional<ImageConvIsa> isa,
                                          bool average_2x2) {
  const Attrs& a = o.node.attrs;
  if (o.node.op != Op::conv2d || a.groups != 1 || a.stride != 1 || a.in > kMaxChannels ||
      a.kernel > kMaxKernel || (average_2x2 && a.out > kAverage2x2MaxChannels))
    return std::nullopt;
  // The int8 path oneDNN takes here (ONEDNN_MAX_CPU_ISA and QLAB_INT8_PATH
  // cap it): a machine capped at AVX2 runs AVX2 on every int8 kernel.
  if (!isa)
    isa = onednn_path() == CpuPath::vnni && cpu_has(ImageConvIsa::avx512_vnni)
              ? ImageConvIsa::avx512_vnni
          : cpu_has(ImageConvIsa::avx2) ? ImageConvIsa::avx2
                                        : ImageConvIsa::portable;
  auto conv = std::make_shared<const ImageConv>(o, *isa, average_2x2);
  return LayerKernel{
      conv->name(), [conv](const torch::Tensor& x, bool parallel) { return (*conv)(x, parallel); }};
}

}  // namespace qlab::int8
