// Convolution on product tables (table_kernels.hpp). Activations are
// packed four codes to a byte, low bits first, [image][group][padded row]
// [padded column][step], a pixel's channels padded with zero codes to a
// multiple of 4; a byte's two pairs of codes select their two tables, side
// by side in 32 bytes of kTables (8 KB, built here once). Weight indices
// are [group][block of kFieldBlock channels][tap][step][pair of the
// step][lane].
#include "table_kernels.hpp"

#include "avx2_store.hpp"
#include "row_output.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>

namespace qlab::bits {
namespace {

constexpr std::int64_t kTableBytes = 16;
// A lookup adds at most 18 to a byte.
constexpr int kStepsPerWiden = 255 / 18;

// For each byte of four codes a0..a3, the tables of (a0, a1) and (a2, a3):
// at i, and at 16 + i, the sums of products with the codes i % 4 and i / 4.
struct Tables {
  alignas(32) std::uint8_t at[256][2 * kTableBytes];
};
constexpr Tables kTables = [] {
  Tables t{};
  for (int codes = 0; codes < 256; ++codes)
    for (int half = 0; half < 2; ++half) {
      const int a0 = (codes >> (4 * half)) & 3, a1 = (codes >> (4 * half + 2)) & 3;
      for (int i = 0; i < kTableBytes; ++i)
        t.at[codes][half * kTableBytes + i] =
            static_cast<std::uint8_t>(a0 * (i & 3) + a1 * (i >> 2));
    }
  return t;
}();

// Bytes of a pixel's codes: steps of two channel pairs, a lookup each.
std::int64_t steps(const ConvGeometry& g) { return (g.group_in() + 3) / 4; }

// The shapes (kernel, steps; stride 1) whose AVX2 kernel keeps a kernel
// row's indices in registers: tables_blocked() and the dispatch both read
// this list.
struct Shape {
  int kernel, steps;
};
constexpr Shape kBlocked[] = {{5, 2}, {5, 1}, {3, 3}, {3, 2}, {3, 1}};
std::int64_t blocks(const ConvGeometry& g) {
  return (g.group_out() + kFieldBlock - 1) / kFieldBlock;
}
std::int64_t block_bytes(const ConvGeometry& g) {
  return g.kernel * g.kernel * steps(g) * 2 * kFieldBlock;
}

// One output row of one group, as the kernels read it.
struct TableRow : RowOutput {
  const std::uint8_t* a;  // codes of kernel row 0 under output column 0
  std::int64_t padded_row, column, kernel, stride, steps;
  const std::int32_t* offsets;  // per lookup: its codes' place from `a`
  std::int64_t lookups;         // per output: taps x steps
  const std::uint8_t* w;        // block 0's indices
  std::int64_t block_bytes, blocks;
  const std::int32_t* sums;  // the receptive fields' code sums, per column

  void put_sum(std::int64_t ow, std::int64_t k, std::int64_t sum) const {
    put(ow, k, static_cast<std::int32_t>(alpha * sum + beta * sums[ow]));
  }
};

void row_portable(const TableRow& c) {
  for (std::int64_t ow = 0; ow < c.width; ++ow)
    for (std::int64_t k = 0; k < c.group_out; ++k) {
      const std::uint8_t* w = c.w + (k / kFieldBlock) * c.block_bytes + k % kFieldBlock;
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < c.kernel; ++i)
        for (std::int64_t j = 0; j < c.kernel; ++j) {
          const std::uint8_t* t = c.a + ow * c.column + i * c.padded_row + j * c.steps;
          for (std::int64_t p = 0; p < 2 * c.steps; ++p, w += kFieldBlock)
            sum += kTables.at[t[p / 2]][p % 2 * kTableBytes + *w];
        }
      c.put_sum(ow, k, sum);
    }
}

#if defined(__x86_64__)

// Adds the byte sums to the 16-bit ones, the low and high 8 bytes of each
// 128-bit lane apart, and clears them. The 16-bit sums stay in memory:
// held in registers through the loop, GCC reloaded them at every step.
template <int R>
QLAB_AVX2 inline void widen(__m256i (&bytes)[R], __m256i (&low)[R], __m256i (&high)[R]) {
  const __m256i zero = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm256_store_si256(&low[r], _mm256_add_epi16(_mm256_load_si256(&low[r]),
                                                 _mm256_unpacklo_epi8(bytes[r], zero)));
    _mm256_store_si256(&high[r], _mm256_add_epi16(_mm256_load_si256(&high[r]),
                                                  _mm256_unpackhi_epi8(bytes[r], zero)));
    bytes[r] = zero;
  }
}

// The 8 channels' sums in a 16-bit half: the even pairs' in its low lane,
// the odd pairs' in its high one; below 2^16 together (tables_fit).
QLAB_AVX2 inline __m256i channel_sums(__m256i half) {
  const __m256i both = _mm256_add_epi16(half, _mm256_permute2x128_si256(half, half, 0x01));
  return _mm256_cvtepu16_epi32(_mm256_castsi256_si128(both));
}

// The dots of R columns from ow0, block b, from their 16-bit sums.
template <int R>
QLAB_AVX2 inline void finish(const TableRow& c, std::int64_t ow0, std::int64_t b,
                             const BlockRequant* requant, const __m256i (&low)[R],
                             const __m256i (&high)[R]) {
  const __m256i alpha = _mm256_set1_epi32(c.alpha);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const std::int64_t lanes = c.lanes(b, h * kChannelBlock);
      if (lanes == 0) continue;
      const __m256i sum = channel_sums(h ? high[r] : low[r]);
      const __m256i dot = _mm256_add_epi32(_mm256_mullo_epi32(sum, alpha),
                                           _mm256_set1_epi32(c.beta * c.sums[ow0 + r]));
      const std::int64_t k = b * kFieldBlock + h * kChannelBlock, ow = ow0 + r;
      store_dots_avx2(dot, lanes, c.requant ? &requant[h] : nullptr,
                      c.requant ? nullptr : c.dots + ow * c.out_column + k,
                      c.requant ? c.codes + ow * c.out_column + k : nullptr);
    }
}

// The two tables of a byte of codes.
QLAB_AVX2 inline __m256i table(std::uint8_t codes) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kTables.at[codes]));
}

// R consecutive output columns of block b, any geometry: per lookup, one
// 32-byte load of the indices, then per column its codes' tables, a shuffle
// and a byte add.
template <int R>
QLAB_AVX2 void block_avx2(const TableRow& c, std::int64_t ow0, std::int64_t b,
                          const BlockRequant* requant) {
  __m256i bytes[R];
  alignas(32) __m256i low[R], high[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) bytes[r] = low[r] = high[r] = _mm256_setzero_si256();
  const std::uint8_t* w = c.w + b * c.block_bytes;
  const std::uint8_t* a = c.a + ow0 * c.column;
  // Up to each widening, a loop of lookups alone (GCC keeps the byte sums
  // in registers only so).
  for (std::int64_t q = 0; q < c.lookups;) {
    const std::int64_t end = std::min(c.lookups, q + kStepsPerWiden);
    for (; q < end; ++q) {
      const __m256i index = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * q));
      const std::uint8_t* t = a + c.offsets[q];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        bytes[r] = _mm256_add_epi8(bytes[r], _mm256_shuffle_epi8(table(t[r * c.column]), index));
    }
    widen<R>(bytes, low, high);
  }
  finish<R>(c, ow0, b, requant, low, high);
}

// The same for stride 1, a K x K kernel and S steps a pixel: a kernel
// row's K indices of a step stay in registers, and each pixel's tables are
// loaded once for the R columns whose windows hold it (R + K - 1 pixels a
// kernel row, where block_avx2 loads R K).
template <int R, int K, int S>
QLAB_AVX2 void block_avx2(const TableRow& c, std::int64_t ow0, std::int64_t b,
                          const BlockRequant* requant) {
  static_assert(K * S <= kStepsPerWiden, "a kernel row's lookups must fit the byte sums");
  constexpr std::int64_t kTap = S * 2 * kFieldBlock;  // index bytes of a tap
  __m256i bytes[R];
  alignas(32) __m256i low[R], high[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) bytes[r] = low[r] = high[r] = _mm256_setzero_si256();
  const std::uint8_t* w = c.w + b * c.block_bytes;
  const std::uint8_t* a = c.a + ow0 * S;
  for (std::int64_t i = 0; i < K; ++i, a += c.padded_row, w += K * kTap) {
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) {
      __m256i index[K];
#pragma GCC unroll 8
      for (int j = 0; j < K; ++j)
        index[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * kTap + s * 32));
#pragma GCC unroll 16
      for (int x = 0; x < R + K - 1; ++x) {
        const __m256i t = table(a[x * S + s]);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          if (x - r >= 0 && x - r < K) {
            bytes[r] = _mm256_add_epi8(bytes[r], _mm256_shuffle_epi8(t, index[x - r]));
            // Left alone, GCC regroups the unrolled adds into one tree,
            // spilling the shuffles' results and loading t again for each.
            asm("" : "+x"(bytes[r]));
          }
      }
    }
    widen<R>(bytes, low, high);
  }
  finish<R>(c, ow0, b, requant, low, high);
}

// Columns in sixes, then fours, twos and ones, on the kernel for the
// layer's shape.
template <int K, int S>
QLAB_AVX2 void columns_avx2(const TableRow& c, std::int64_t b, const BlockRequant* requant) {
  std::int64_t ow = 0;
  for (; ow + 6 <= c.width; ow += 6) block_avx2<6, K, S>(c, ow, b, requant);
  for (; ow + 4 <= c.width; ow += 4) block_avx2<4, K, S>(c, ow, b, requant);
  for (; ow + 2 <= c.width; ow += 2) block_avx2<2, K, S>(c, ow, b, requant);
  for (; ow < c.width; ++ow) block_avx2<1, K, S>(c, ow, b, requant);
}

QLAB_AVX2 void columns_avx2(const TableRow& c, std::int64_t b, const BlockRequant* requant) {
  std::int64_t ow = 0;
  for (; ow + 4 <= c.width; ow += 4) block_avx2<4>(c, ow, b, requant);
  for (; ow + 2 <= c.width; ow += 2) block_avx2<2>(c, ow, b, requant);
  for (; ow < c.width; ++ow) block_avx2<1>(c, ow, b, requant);
}

// The kernel for the row's shape in kBlocked, from entry I on; else the
// general one.
template <std::size_t I = 0>
QLAB_AVX2 void blocked_columns_avx2(const TableRow& c, std::int64_t b,
                                    const BlockRequant* requant) {
  if constexpr (I == std::size(kBlocked)) {
    columns_avx2(c, b, requant);
  } else {
    constexpr Shape shape = kBlocked[I];
    if (c.stride == 1 && c.kernel == shape.kernel && c.steps == shape.steps)
      columns_avx2<shape.kernel, shape.steps>(c, b, requant);
    else
      blocked_columns_avx2<I + 1>(c, b, requant);
  }
}

QLAB_AVX2 void row_avx2(const TableRow& c) {
  for (std::int64_t b = 0; b < c.blocks; ++b) {
    // Set where used: zeroing the two cost 5% of the layer's samples.
    BlockRequant requant[2];
    for (int h = 0; h < 2; ++h)
      if (const std::int64_t lanes = c.lanes(b, h * kChannelBlock); c.requant && lanes > 0)
        requant[h] =
            block_requant(*c.requant, c.first_channel + b * kFieldBlock + h * kChannelBlock, lanes);
    blocked_columns_avx2(c, b, requant);
  }
}

#endif

}  // namespace

bool tables_blocked(const ConvGeometry& g) {
  return g.stride == 1 && std::any_of(std::begin(kBlocked), std::end(kBlocked), [&](Shape s) {
           return g.kernel == s.kernel && steps(g) == s.steps;
         });
}

bool tables_fit(const ConvGeometry& g) {
  return 9 * g.kernel * g.kernel * g.group_in() < (1 << 16);
}

std::int64_t table_image_bytes(const ConvGeometry& g) {
  return g.padded_height() * g.padded_width() * steps(g);
}

std::vector<std::int32_t> table_offsets(const ConvGeometry& g) {
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < g.kernel; ++i)
    for (std::int64_t j = 0; j < g.kernel; ++j)
      for (std::int64_t s = 0; s < steps(g); ++s)
        out.push_back(static_cast<std::int32_t>((i * g.padded_width() + j) * steps(g) + s));
  return out;
}

std::int64_t table_index_bytes(const ConvGeometry& g) {
  return g.groups * blocks(g) * block_bytes(g);
}

void put_table_index(const ConvGeometry& g, std::int64_t oc, std::int64_t tap, std::int64_t ch,
                     int level, std::vector<std::uint8_t>& indices) {
  const std::int64_t group = oc / g.group_out(), in_group = oc % g.group_out();
  const std::int64_t pair = ch / 2;
  const std::int64_t at = (group * blocks(g) + in_group / kFieldBlock) * block_bytes(g) +
                          (tap * steps(g) * 2 + pair) * kFieldBlock + in_group % kFieldBlock;
  indices[static_cast<std::size_t>(at)] |= static_cast<std::uint8_t>(level << (2 * (ch % 2)));
}

void pack_tables(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                 std::int64_t last, PackedActivations& out) {
  const ConvGeometry& g = out.geometry;
  const std::int64_t cg = g.group_in(), wp = g.padded_width(), hp = g.padded_height();
  const std::int64_t pixel = steps(g), image = table_image_bytes(g);
  const std::int64_t oh = g.out_height(), ow = g.out_width(), k = g.kernel, s = g.stride;
  // One pixel's codes, four to a byte, zero codes after them; their sum.
  // Eight codes at a time in a 64-bit word, read whole but where fewer
  // bytes are `readable` (the input's end, the border's pixel).
  const std::int64_t input = g.batch * g.height * g.width * g.in_channels;
  const std::int64_t last_count = cg - (cg - 1) / 8 * 8;  // codes of the last word
  const std::uint64_t last_mask =
      0x0303030303030303ull & (last_count == 8 ? ~0ull : (1ull << (8 * last_count)) - 1);
  const auto put_pixel = [&](const std::uint8_t* codes, std::int64_t readable, std::uint8_t* out) {
    std::int32_t sum = 0;
    for (std::int64_t c = 0; c < cg; c += 8) {
      const bool last = c + 8 >= cg;
      std::uint64_t v = 0;
      std::memcpy(&v, codes + c, static_cast<std::size_t>(std::min<std::int64_t>(8, readable - c)));
      v &= last ? last_mask : 0x0303030303030303ull;
      sum += static_cast<std::int32_t>((v * 0x0101010101010101ull) >> 56);
      // Codes in byte pairs to 4 bits, then those in pairs to a byte, in
      // the low byte of each 32-bit half.
      v = (v | v >> 6) & 0x000f000f000f000full;
      v = (v | v >> 12) & 0x000000ff000000ffull;
      out[c / 4] = static_cast<std::uint8_t>(v);
      if (!last || last_count > 4) out[c / 4 + 1] = static_cast<std::uint8_t>(v >> 32);
    }
    return sum;
  };
  // The border's pixel, packed once.
  std::vector<std::uint8_t> border(static_cast<std::size_t>(pixel));
  const std::vector<std::uint8_t> pad(static_cast<std::size_t>(cg), pad_code);
  const std::int32_t border_sum = put_pixel(pad.data(), cg, border.data());
  // Each pixel's code sum, then their sums along kernel rows.
  std::vector<std::int32_t> pixel_sums(static_cast<std::size_t>(hp * wp)),
      rows(static_cast<std::size_t>(hp * ow)),
      running(static_cast<std::size_t>(std::max(hp, wp) + 1));
  for (std::int64_t n = first; n < last; ++n)
    for (std::int64_t group = 0; group < g.groups; ++group) {
      std::uint8_t* dst = out.tables.data() + (n * g.groups + group) * image;
      for (std::int64_t y = 0; y < hp; ++y) {
        const std::int64_t iy = y - g.padding;
        for (std::int64_t x = 0; x < wp; ++x) {
          const std::int64_t ix = x - g.padding;
          std::uint8_t* codes = dst + (y * wp + x) * pixel;
          auto& sum = pixel_sums[static_cast<std::size_t>(y * wp + x)];
          if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) {
            std::copy(border.begin(), border.end(), codes);
            sum = border_sum;
          } else {
            const std::int64_t at =
                ((n * g.height + iy) * g.width + ix) * g.in_channels + group * cg;
            sum = put_pixel(nhwc + at, input - at, codes);
          }
        }
      }
      // The receptive fields' sums: along rows, then down columns, each a
      // difference of running sums.
      std::vector<std::int32_t>& run = running;
      for (std::int64_t y = 0; y < hp; ++y) {
        run[0] = 0;
        for (std::int64_t x = 0; x < wp; ++x) run[x + 1] = run[x] + pixel_sums[y * wp + x];
        for (std::int64_t c = 0; c < ow; ++c) rows[y * ow + c] = run[c * s + k] - run[c * s];
      }
      std::int32_t* sums = out.window_sums.data() + (n * g.groups + group) * oh * ow;
      for (std::int64_t c = 0; c < ow; ++c) {
        run[0] = 0;
        for (std::int64_t y = 0; y < hp; ++y) run[y + 1] = run[y] + rows[y * ow + c];
        for (std::int64_t r = 0; r < oh; ++r) sums[r * ow + c] = run[r * s + k] - run[r * s];
      }
    }
}

void table_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
               const Requant* q, std::int32_t* dots, std::uint8_t* codes, Isa isa) {
  const ConvGeometry& g = x.geometry;
  for (std::int64_t group = 0; group < g.groups; ++group) {
    TableRow r;
    static_cast<RowOutput&>(r) = row_output(g, w, group, q, dots, codes);
    r.padded_row = g.padded_width() * steps(g);
    r.a = x.tables.data() + (n * g.groups + group) * table_image_bytes(g) +
          oh * g.stride * r.padded_row;
    r.column = g.stride * steps(g);
    r.kernel = g.kernel;
    r.stride = g.stride;
    r.steps = steps(g);
    r.lookups = g.kernel * g.kernel * r.steps;
    r.offsets = x.table_offsets.data();
    r.blocks = blocks(g);
    r.block_bytes = block_bytes(g);
    r.w = w.table_indices.data() + group * r.blocks * r.block_bytes;
    r.sums = x.window_sums.data() + ((n * g.groups + group) * g.out_height() + oh) * r.width;
#if defined(__x86_64__)
    if (isa != Isa::portable) {
      row_avx2(r);
      continue;
    }
#endif
    row_portable(r);
  }
}

}  // namespace qlab::bits
