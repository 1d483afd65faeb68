// AND + popcount convolution on bit planes (bit_kernels.hpp). The AVX2 and
// AVX-512 functions carry their own target attributes, so this file builds
// for any x86-64 and best_isa() picks among them at run time.
#include "bit_kernels.hpp"

#include "avx2_store.hpp"
#include "field_kernels.hpp"
#include "table_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace qlab::bits {
namespace {

std::int64_t blocks(const ConvGeometry& g) {
  return (g.group_out() + kChannelBlock - 1) / kChannelBlock;
}
// Columns of a packed row: every padded pixel, or windowed, every column a
// kernel row can start at; and the words at each.
std::int64_t row_columns(const ConvGeometry& g) {
  return g.windowed() ? g.padded_width() - g.kernel + 1 : g.padded_width();
}
std::int64_t column_words(const ConvGeometry& g) {
  return g.windowed() ? g.row_words() : g.words();
}
// Words of one plane of one group over the padded map.
std::int64_t plane_words(const ConvGeometry& g) {
  return g.padded_height() * row_columns(g) * column_words(g);
}

// round(fma(m, d, c)) clamped, as the vector code computes it: adding
// 1.5 * 2^52 leaves no bits below the units, rounding half to even.
inline std::uint8_t code_of(double m, std::int32_t d, double c, double lo, double hi) {
  constexpr double kRound = 6755399441055744.0;
  const double v = std::min(std::max(std::fma(m, static_cast<double>(d), c), lo), hi);
  return static_cast<std::uint8_t>((v + kRound) - kRound);
}

// One output row of one group, as its kernels read it: plain values, so
// that the loops keep them in registers.
struct Row {
  const std::uint64_t* a;    // activation plane 0, kernel row 0, under output column 0
  std::int64_t a_plane;      // words between activation planes
  std::int64_t kernel_row;   // words between kernel rows
  std::int64_t column;       // words between output columns
  std::int64_t kernel, run;  // kernel rows; words of one kernel row of one plane
  int a_planes, w_planes;
  const std::uint64_t* w;   // weight block 0, plane 0
  const std::uint64_t* wn;  // the same in nibbles (twice the words)
  std::int64_t w_plane;     // words of one weight plane of a block
  std::int64_t blocks;
  std::int32_t alpha, beta;
  std::int32_t* out;        // output column 0, the group's channel 0
  std::int64_t out_column;  // int32 between output columns
  std::int64_t group_out;
  std::int64_t width;   // output columns
  bool paired = false;  // ConvGeometry::paired()
  // Set: the kernel writes codes (uint8, out_column apart), not dots; m and
  // c start at the group's channel 0.
  const Requant* requant = nullptr;
  std::uint8_t* codes = nullptr;

  const std::uint64_t* weights(std::int64_t b, int plane) const {
    return w + (b * w_planes + plane) * w_plane;
  }
  const std::uint64_t* weight_nibbles(std::int64_t b, int plane) const {
    return wn + 2 * (b * w_planes + plane) * w_plane;
  }
  std::int64_t lanes(std::int64_t b) const {
    return std::min(kChannelBlock, group_out - b * kChannelBlock);
  }
  std::int32_t* dots(std::int64_t ow, std::int64_t b) const {
    return out + ow * out_column + b * kChannelBlock;
  }
};

Row row_of(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
           std::int64_t g, std::int32_t* out) {
  const ConvGeometry& geo = x.geometry;
  Row r;
  r.a_plane = plane_words(geo);
  r.kernel_row = row_columns(geo) * column_words(geo);
  r.a =
      x.bits.data() + (n * geo.groups + g) * x.planes * r.a_plane + oh * geo.stride * r.kernel_row;
  r.column = geo.stride * column_words(geo);
  r.kernel = geo.kernel;
  r.run = geo.row_words();
  r.a_planes = x.planes;
  r.w_planes = w.planes;
  r.w_plane = geo.kernel * r.run * kChannelBlock;
  r.blocks = blocks(w.geometry);
  r.w = w.bits.data() + g * r.blocks * w.planes * r.w_plane;
  // Only AVX2 reads the nibbles, and only it packs them.
  r.wn = w.nibbles.empty() ? nullptr : w.nibbles.data() + 2 * g * r.blocks * w.planes * r.w_plane;
  r.alpha = w.alpha;
  r.beta = w.beta;
  r.paired = geo.paired();
  r.out_column = geo.out_channels;
  r.group_out = geo.group_out();
  r.out = out ? out + g * r.group_out : nullptr;  // conv_row_codes writes codes instead
  r.width = geo.out_width();
  return r;
}

// sum a over each output column's receptive field. Inlined into each ISA's
// row, whose target turns the builtin into its popcount instruction.
__attribute__((always_inline)) inline void activation_sums(const Row& c, std::int32_t* sums) {
  const std::int64_t kernel = c.kernel, run = c.run, column = c.column, row = c.kernel_row;
  for (std::int64_t ow = 0; ow < c.width; ++ow) {
    std::int64_t sum = 0;
    for (int p = 0; p < c.a_planes; ++p) {
      const std::uint64_t* a = c.a + p * c.a_plane + ow * column;
      std::int64_t plane = 0;
      for (std::int64_t i = 0; i < kernel; ++i, a += row)
        for (std::int64_t l = 0; l < run; ++l) plane += __builtin_popcountll(a[l]);
      sum += plane << p;
    }
    sums[ow] = static_cast<std::int32_t>(sum);
  }
}

void block_portable(const Row& c, std::int64_t ow, std::int64_t b, std::int32_t a_sum) {
  std::int64_t acc[kChannelBlock] = {};
  for (int pa = 0; pa < c.a_planes; ++pa)
    for (int pw = 0; pw < c.w_planes; ++pw) {
      const std::uint64_t* wv = c.weights(b, pw);
      const std::uint64_t* a = c.a + pa * c.a_plane + ow * c.column;
      std::int64_t sum[kChannelBlock] = {};
      for (std::int64_t i = 0; i < c.kernel; ++i, a += c.kernel_row)
        for (std::int64_t l = 0; l < c.run; ++l, wv += kChannelBlock)
          for (std::int64_t lane = 0; lane < kChannelBlock; ++lane)
            sum[lane] += __builtin_popcountll(a[l] & wv[lane]);
      for (std::int64_t lane = 0; lane < kChannelBlock; ++lane) acc[lane] += sum[lane] << (pa + pw);
    }
  std::int32_t* dst = c.dots(ow, b);
  for (std::int64_t lane = 0; lane < c.lanes(b); ++lane)
    dst[lane] = static_cast<std::int32_t>(c.alpha * acc[lane] + c.beta * a_sum);
}

void row_portable(const Row& c, std::int32_t* a_sums) {
  activation_sums(c, a_sums);
  for (std::int64_t b = 0; b < c.blocks; ++b)
    for (std::int64_t ow = 0; ow < c.width; ++ow) block_portable(c, ow, b, a_sums[ow]);
}

#if defined(__x86_64__)

// Adds the byte counts, summed per 64-bit lane and weighted by their
// activation plane's 2^p (a weight plane's 2^q is in its lookup table), to
// the totals.
template <int N>
QLAB_AVX2 inline void flush(__m256i (&bytes)[N], __m256i (&total)[N], __m128i shift) {
  const __m256i zero = _mm256_setzero_si256();
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) {
    total[k] = _mm256_add_epi64(total[k], _mm256_sll_epi64(_mm256_sad_epu8(bytes[k], zero), shift));
    bytes[k] = zero;
  }
}

// flush() for the paired kernel: each 32-bit half of a 64-bit lane (a
// column) summed into its own 32-bit count, by multiply-adds with ones.
template <int N>
QLAB_AVX2 inline void flush_pairs(__m256i (&bytes)[N], __m256i (&counts)[N]) {
  const __m256i zero = _mm256_setzero_si256(), ones8 = _mm256_set1_epi8(1),
                ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) {
    counts[k] = _mm256_add_epi32(counts[k],
                                 _mm256_madd_epi16(_mm256_maddubs_epi16(bytes[k], ones8), ones16));
    bytes[k] = zero;
  }
}

// Block b's requantization where the row writes codes (BlockRequant).
QLAB_AVX2 inline BlockRequant row_requant(const Row& c, std::int64_t b) {
  return c.requant ? block_requant(*c.requant, b * kChannelBlock, c.lanes(b)) : BlockRequant{};
}

// Column ow's 8 dots of block b, as dots or, where the row writes codes,
// as codes by r (row_requant).
QLAB_AVX2 inline void store_avx2(const Row& c, std::int64_t ow, std::int64_t b, __m256i dot,
                                 const BlockRequant& r) {
  const std::int64_t channel = b * kChannelBlock;
  if (c.requant)
    store_dots_avx2(dot, c.lanes(b), &r, nullptr, c.codes + ow * c.out_column + channel);
  else
    store_dots_avx2(dot, c.lanes(b), nullptr, c.dots(ow, b), nullptr);
}

// Column ow's dots of block b from its 8 channels' int32 counts: alpha
// counts + beta sum a.
QLAB_AVX2 inline void store_count_avx2(const Row& c, std::int64_t ow, std::int64_t b,
                                       __m256i counts, std::int32_t a_sum, const BlockRequant& r) {
  store_avx2(c, ow, b,
             _mm256_add_epi32(_mm256_mullo_epi32(counts, _mm256_set1_epi32(c.alpha)),
                              _mm256_set1_epi32(c.beta * a_sum)),
             r);
}

// store_count_avx2 from counts of 64 bits a channel in two registers
// (channels 0-3, 4-7; they fit 32 bits).
QLAB_AVX2 inline void store_counts_avx2(const Row& c, std::int64_t ow, std::int64_t b,
                                        __m256i first, __m256i second, std::int32_t a_sum,
                                        const BlockRequant& r) {
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  store_count_avx2(c, ow, b,
                   _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(first, even),
                                             _mm256_permutevar8x32_epi32(second, even), 0x20),
                   a_sum, r);
}

// A pair's two columns of block b from flush_pairs' counts: channels 0-3
// in `first`, 4-7 in `second`, each channel's column 2p count, then 2p + 1's.
QLAB_AVX2 inline void store_pair_avx2(const Row& c, std::int64_t ow, std::int64_t ow_next,
                                      std::int64_t b, __m256i first, __m256i second,
                                      std::int32_t a_sum, std::int32_t a_sum_next,
                                      const BlockRequant& r) {
  const __m256 f = _mm256_castsi256_ps(first), s = _mm256_castsi256_ps(second);
  // Within each 128-bit half, channels 0, 1, 4, 5 (or 2, 3, 6, 7); then the
  // middle 64-bit quarters swap.
  const __m256i one = _mm256_permute4x64_epi64(
                    _mm256_castps_si256(_mm256_shuffle_ps(f, s, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8),
                other = _mm256_permute4x64_epi64(
                    _mm256_castps_si256(_mm256_shuffle_ps(f, s, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8);
  store_count_avx2(c, ow, b, one, a_sum, r);
  store_count_avx2(c, ow_next, b, other, a_sum_next, r);
}

// R consecutive output columns of one block of 8 channels (two registers),
// for weights of WP planes: each activation word is broadcast, and its low
// and high nibbles ANDed with the 8 channels' words stored as nibbles, so
// that each lookup takes one AND and no masking (the shift of the
// activation serves both registers and every weight plane). A weight
// plane's lookups count 2^q each, from a table scaled so, into the same
// bytes.
template <int R, int WP>
QLAB_AVX2 void block_avx2(const Row& c, std::int64_t ow0, std::int64_t b,
                          const std::int32_t* a_sums) {
  constexpr int N = 2 * R;  // accumulators: column r, half h at 2r + h
  // A byte gains at most 8 (1 + .. + 2^(WP-1)) per word.
  constexpr int kWordsPerFlush = 255 / (8 * ((1 << WP) - 1));
  const std::int64_t kernel = c.kernel, run = c.run, column = c.column, row = c.kernel_row;
  __m256i table[WP];
#pragma GCC unroll 2
  for (int q = 0; q < WP; ++q) {
    const char k = static_cast<char>(1 << q);
    table[q] = _mm256_setr_epi8(0, k, k, 2 * k, k, 2 * k, 2 * k, 3 * k, k, 2 * k, 2 * k, 3 * k,
                                2 * k, 3 * k, 3 * k, 4 * k, 0, k, k, 2 * k, k, 2 * k, 2 * k, 3 * k,
                                k, 2 * k, 2 * k, 3 * k, 2 * k, 3 * k, 3 * k, 4 * k);
  }
  const std::int64_t plane = 2 * c.w_plane;  // words between weight planes' nibbles
  const __m256i zero = _mm256_setzero_si256();
  __m256i total[N];
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) total[k] = zero;
  for (int pa = 0; pa < c.a_planes; ++pa) {
    const __m128i shift = _mm_cvtsi32_si128(pa);
    const std::uint64_t* wv = c.weight_nibbles(b, 0);
    const std::uint64_t* a = c.a + pa * c.a_plane + ow0 * column;
    __m256i bytes[N];
#pragma GCC unroll 16
    for (int k = 0; k < N; ++k) bytes[k] = zero;
    int pending = 0;
    for (std::int64_t i = 0; i < kernel; ++i, a += row)
      for (std::int64_t l = 0; l < run; ++l, wv += 2 * kChannelBlock) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m256i v = _mm256_set1_epi64x(static_cast<long long>(a[r * column + l]));
          const __m256i v_high = _mm256_srli_epi16(v, 4);
#pragma GCC unroll 2
          for (int q = 0; q < WP; ++q) {
            const auto* w = reinterpret_cast<const __m256i*>(wv + q * plane);
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
              const __m256i low = _mm256_and_si256(v, _mm256_loadu_si256(w + h)),
                            high = _mm256_and_si256(v_high, _mm256_loadu_si256(w + 2 + h));
              bytes[2 * r + h] = _mm256_add_epi8(
                  bytes[2 * r + h], _mm256_add_epi8(_mm256_shuffle_epi8(table[q], low),
                                                    _mm256_shuffle_epi8(table[q], high)));
            }
          }
        }
        if (++pending == kWordsPerFlush) {
          flush<N>(bytes, total, shift);
          pending = 0;
        }
      }
    flush<N>(bytes, total, shift);
  }
  const BlockRequant requant = row_requant(c, b);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    store_counts_avx2(c, ow0 + r, b, total[2 * r], total[2 * r + 1], a_sums[r], requant);
}

// Two columns at once where their kernel rows share a word (c.paired: the
// weights twice in each word; W1A1): column 2p's word in the low half of a
// broadcast, 2p + 1's in the high half. The byte counts of each half are
// summed apart when flushed. P = (n + 1) / 2 pairs cover `n` columns from
// ow0; an odd n's last pair takes its last column twice (and writes it
// twice). kSums: also count the activation words into a_sums, with scalar
// popcounts beside the vector work (the first block does).
template <int P, bool kSums>
QLAB_AVX2 void pairs_avx2(const Row& c, std::int64_t ow0, std::int64_t n, std::int64_t b,
                          std::int32_t* a_sums) {
  constexpr int N = 2 * P;  // accumulators: pair p, half of the block h at 2p + h
  constexpr int kWordsPerFlush = 255 / 8;
  const std::int64_t column = c.column, row = c.kernel_row;
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i zero = _mm256_setzero_si256();
  std::int64_t first[P], second[P];
  std::int32_t sums[2 * P] = {};
  __m256i bytes[N], counts[N];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    first[p] = 2 * p * column;
    second[p] = std::min<std::int64_t>(2 * p + 1, n - 1) * column;
  }
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) bytes[k] = counts[k] = zero;
  const std::uint64_t* wv = c.weight_nibbles(b, 0);
  const std::uint64_t* a = c.a + ow0 * column;
  int pending = 0;
  for (std::int64_t i = 0; i < c.kernel; ++i, a += row, wv += 2 * kChannelBlock) {
    const auto* w = reinterpret_cast<const __m256i*>(wv);
    const __m256i w_low[2] = {_mm256_loadu_si256(w), _mm256_loadu_si256(w + 1)},
                  w_high[2] = {_mm256_loadu_si256(w + 2), _mm256_loadu_si256(w + 3)};
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const std::uint64_t one = a[first[p]], other = a[second[p]];
      if (kSums) {
        sums[2 * p] += __builtin_popcountll(one);
        sums[2 * p + 1] += __builtin_popcountll(other);
      }
      const __m256i v = _mm256_set1_epi64x(static_cast<long long>(one | (other << 32)));
      const __m256i v_high = _mm256_srli_epi16(v, 4);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h)
        bytes[2 * p + h] = _mm256_add_epi8(
            bytes[2 * p + h],
            _mm256_add_epi8(_mm256_shuffle_epi8(table, _mm256_and_si256(v, w_low[h])),
                            _mm256_shuffle_epi8(table, _mm256_and_si256(v_high, w_high[h]))));
    }
    if (++pending == kWordsPerFlush) {
      flush_pairs<N>(bytes, counts);
      pending = 0;
    }
  }
  flush_pairs<N>(bytes, counts);
  const BlockRequant requant = row_requant(c, b);
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    const std::int64_t next = std::min<std::int64_t>(2 * p + 1, n - 1);
    if (kSums) {
      a_sums[2 * p] = sums[2 * p];
      a_sums[next] = sums[2 * p + 1];
    }
    store_pair_avx2(c, ow0 + 2 * p, ow0 + next, b, counts[2 * p], counts[2 * p + 1], a_sums[2 * p],
                    a_sums[next], requant);
  }
}

// A paired tile of n <= 2 P columns, on the kernel for exactly (n + 1) / 2
// pairs.
template <int P>
QLAB_AVX2 void pair_tile_avx2(const Row& c, std::int64_t ow, std::int64_t n, std::int32_t* a_sums) {
  if constexpr (P > 1)
    if ((n + 1) / 2 < P) return pair_tile_avx2<P - 1>(c, ow, n, a_sums);
  pairs_avx2<P, true>(c, ow, n, 0, a_sums + ow);
  for (std::int64_t b = 1; b < c.blocks; ++b) pairs_avx2<P, false>(c, ow, n, b, a_sums + ow);
}

// A paired W1A1 row, in tiles of up to 8 columns (4 pairs).
QLAB_AVX2 void pair_tiles_avx2(const Row& c, std::int32_t* a_sums) {
  constexpr std::int64_t kColumns = 8;
  for (std::int64_t ow = 0; ow < c.width; ow += kColumns)
    pair_tile_avx2<kColumns / 2>(c, ow, std::min(kColumns, c.width - ow), a_sums);
}

template <int WP>
QLAB_AVX2 void tiles_avx2(const Row& c, const std::int32_t* a_sums) {
  constexpr int kColumns = 4;
  // Tile by tile of columns, every block: the tile's activation words stay
  // in L1 while the blocks' weights pass over them.
  std::int64_t ow = 0;
  for (; ow + kColumns <= c.width; ow += kColumns)
    for (std::int64_t b = 0; b < c.blocks; ++b) block_avx2<kColumns, WP>(c, ow, b, a_sums + ow);
  for (; ow + 2 <= c.width; ow += 2)
    for (std::int64_t b = 0; b < c.blocks; ++b) block_avx2<2, WP>(c, ow, b, a_sums + ow);
  for (; ow < c.width; ++ow)
    for (std::int64_t b = 0; b < c.blocks; ++b) block_avx2<1, WP>(c, ow, b, a_sums + ow);
}

QLAB_AVX2 void row_avx2(const Row& c, std::int32_t* a_sums) {
  if (c.paired && c.a_planes == 1 && c.w_planes == 1) return pair_tiles_avx2(c, a_sums);
  activation_sums(c, a_sums);
  if (c.w_planes == 1)
    tiles_avx2<1>(c, a_sums);
  else
    tiles_avx2<2>(c, a_sums);
}

// fn(first, n) for near-equal tiles of at most `most` of `width` columns.
template <typename Fn>
void near_equal_tiles(std::int64_t width, std::int64_t most, Fn&& fn) {
  const std::int64_t tiles = (width + most - 1) / most;
  for (std::int64_t t = 0, ow = 0; t < tiles; ++t) {
    const std::int64_t n = (width - ow + tiles - t - 1) / (tiles - t);
    fn(ow, n);
    ow += n;
  }
}

// fn(std::integral_constant<int, n>) for n in [1, R]: a tile's width as a
// template argument, so that its kernel unrolls over exactly its columns.
template <int R, typename Fn>
void with_width(std::int64_t n, Fn&& fn) {
  if constexpr (R > 1)
    if (n < R) return with_width<R - 1>(n, fn);
  fn(std::integral_constant<int, R>{});
}

// fn(ow, std::integral_constant<int, n>) for near-equal tiles of at most
// Most of `width` columns, each tile's width a template argument.
template <int Most, typename Fn>
void for_tiles(std::int64_t width, Fn&& fn) {
  near_equal_tiles(width, Most, [&](std::int64_t ow, std::int64_t n) {
    with_width<Most>(n, [&](auto r) { fn(ow, r); });
  });
}

// GCC 12 warns of the undefined source operand inside its own AVX-512
// intrinsics (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning, which clang would warn is unknown
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// A block's R columns of counts, total[r] = sum 2^(p+q) popcount(A_p & C_q)
// per lane, to dots alpha total + beta sum a, stored as dots or as codes.
// kSums: sum a is the lowest lane of sums[r], and goes to a_sums[r]; else
// it is read from a_sums[r].
template <int R, bool kSums>
QLAB_AVX512 inline void finish_avx512(const Row& c, std::int64_t ow0, std::int64_t b,
                                      const __m512i (&total)[R], const __m512i (&sums)[R],
                                      std::int32_t* a_sums) {
  // alpha acc + beta sum a, as 8 int32 (the counts fit 32 bits).
  const __m256i alpha = _mm256_set1_epi32(c.alpha);
  const std::int32_t beta = c.beta;
  const auto mask = static_cast<__mmask8>((1u << c.lanes(b)) - 1);
  __m256i dots[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (kSums)
      a_sums[r] = static_cast<std::int32_t>(_mm_cvtsi128_si64(_mm512_castsi512_si128(sums[r])));
    dots[r] =
        _mm256_add_epi32(_mm256_mullo_epi32(_mm512_maskz_cvtepi64_epi32(0xff, total[r]), alpha),
                         _mm256_set1_epi32(beta * a_sums[r]));
  }
  if (!c.requant) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm256_mask_storeu_epi32(c.dots(ow0 + r, b), mask, dots[r]);
    return;
  }
  const Requant& q = *c.requant;
  std::uint8_t* codes = c.codes + ow0 * c.out_column + b * kChannelBlock;
  const std::int64_t step = c.out_column;
  if (const int levels = q.levels()) {  // lo plus the thresholds under the dot
    // Levels past the layer's at INT32_MAX, which no dot exceeds.
    __m256i above[kMaxThresholds];
#pragma GCC unroll 3
    for (int j = 0; j < kMaxThresholds; ++j)
      above[j] = j < levels ? _mm256_maskz_loadu_epi32(
                                  mask, q.thresholds + j * q.channels + b * kChannelBlock)
                            : _mm256_set1_epi32(std::numeric_limits<std::int32_t>::max());
    const __m256i lo = _mm256_set1_epi32(static_cast<int>(q.lo));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      __m256i code = lo;
#pragma GCC unroll 3
      for (int j = 0; j < kMaxThresholds; ++j)
        code = _mm256_sub_epi32(code, _mm256_cmpgt_epi32(dots[r], above[j]));
      _mm_mask_storeu_epi8(codes + r * step, mask, _mm256_cvtepi32_epi8(code));
    }
    return;
  }
  // As requantize(): fused multiply-add in double, clamp, round half to
  // even, narrow to bytes. Loaded once: the byte stores may alias c.
  const __m512d m = _mm512_maskz_loadu_pd(mask, q.m + b * kChannelBlock),
                add = _mm512_maskz_loadu_pd(mask, q.c + b * kChannelBlock),
                lo = _mm512_set1_pd(q.lo), hi = _mm512_set1_pd(q.hi);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512d v = _mm512_fmadd_pd(m, _mm512_cvtepi32_pd(dots[r]), add);
    _mm_mask_storeu_epi8(
        codes + r * step, mask,
        _mm256_cvtusepi32_epi8(_mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(v, lo), hi))));
  }
}

// R consecutive output columns of one block: one register holds the block's
// 8 channels, VPOPCNTQ counts each lane. kSums: also count the activation
// words themselves, into a_sums (the first block of a tile does). kBinary:
// one plane each, known when compiling, so that the plane loops and their
// sums fold away (else 4 R accumulators spill at R = 8).
template <int R, bool kSums, bool kBinary>
QLAB_AVX512 void block_avx512(const Row& c, std::int64_t ow0, std::int64_t b,
                              std::int32_t* a_sums) {
  const std::int64_t kernel = c.kernel, run = c.run, column = c.column, row = c.kernel_row;
  const int a_planes = kBinary ? 1 : c.a_planes, w_planes = kBinary ? 1 : c.w_planes;
  __m512i total[R], sums[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) total[r] = sums[r] = _mm512_setzero_si512();
  for (int pa = 0; pa < a_planes; ++pa)
    for (int pw = 0; pw < w_planes; ++pw) {
      const bool count_a = kSums && pw == 0;
      const std::uint64_t* wv = c.weights(b, pw);
      const std::uint64_t* a = c.a + pa * c.a_plane + ow0 * column;
      __m512i sum[R], plane[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) sum[r] = plane[r] = _mm512_setzero_si512();
      for (std::int64_t i = 0; i < kernel; ++i, a += row)
        for (std::int64_t l = 0; l < run; ++l, wv += kChannelBlock) {
          const __m512i w = _mm512_loadu_si512(wv);
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            const __m512i v = _mm512_set1_epi64(static_cast<long long>(a[r * column + l]));
            sum[r] = _mm512_add_epi64(sum[r], _mm512_popcnt_epi64(_mm512_and_si512(v, w)));
            if (count_a) plane[r] = _mm512_add_epi64(plane[r], _mm512_popcnt_epi64(v));
          }
        }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
        for (int k = 0; k < pa + pw; ++k) sum[r] = _mm512_add_epi64(sum[r], sum[r]);  // x 2^(p + q)
        total[r] = _mm512_add_epi64(total[r], sum[r]);
        if (count_a) {
#pragma GCC unroll 16
          for (int k = 0; k < pa; ++k) plane[r] = _mm512_add_epi64(plane[r], plane[r]);  // x 2^p
          sums[r] = _mm512_add_epi64(sums[r], plane[r]);
        }
      }
    }
  finish_avx512<R, kSums>(c, ow0, b, total, sums, a_sums);
}

// sum + popcount(x) per 64-bit lane, or per 32-bit half (k32). Counting
// every layer by halves and adding them at the end cost the unpaired
// linear 9216->128 layer 5% (0.113 against 0.107 ms).
template <bool k32>
QLAB_AVX512 inline __m512i count_and_add(__m512i sum, __m512i x) {
  return k32 ? _mm512_add_epi32(sum, _mm512_popcnt_epi32(x))
             : _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
}

// N columns of one block of a layer of two planes each (W2A2), the four
// plane pairs in one pass: per word, two weight loads and two broadcasts
// serve four AND + popcounts, summed by their weights 2^(p + q) into three
// accumulators. block_avx512 runs the pairs one pass each, broadcasting
// each activation word twice and keeping 4 N accumulators, which spill.
// `words`: the tile's activation words, [kernel row][word][column][plane]
// (w2a2_tile_avx512), so that one pointer reaches every column's words:
// read in place they take 2 N address registers, and spill. The activation
// sums are read from a_sums.
//
// kPairs: two columns a register where their kernel rows share a word
// (c.paired, which packs the weights twice in each word; LeNet's 6->16
// conv): column 2p's word in the low half of each lane, 2p + 1's in the
// high, [kernel row][pair][plane] (pair_tile_avx512), each 32-bit half
// counted apart by VPOPCNTD. That halves the ANDs, counts and adds per
// column. W1A1 runs paired here too, kPlanes 1.
template <int N, bool kPairs, int kPlanes = 2>
QLAB_AVX512 void block_one_pass_avx512(const Row& c, const std::uint64_t* words, std::int64_t ow0,
                                       std::int64_t b, std::int32_t* a_sums) {
  static_assert(kPlanes == 2 || kPairs, "unpaired W1A1 runs on block_avx512");
  constexpr int R = kPairs ? (N + 1) / 2 : N;  // registers of columns
  const std::int64_t steps = c.kernel * c.run;
  __m512i s0[R], s1[R], s2[R];  // weights 1, 2, 4
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) s0[r] = s1[r] = s2[r] = _mm512_setzero_si512();
  const std::uint64_t* w0 = c.weights(b, 0);
  const std::uint64_t* w1 = c.weights(b, kPlanes - 1);
  // do-while: a loop that may run no times made GCC copy every
  // accumulator to a second register at each step.
  std::int64_t t = 0;
  do {
    const __m512i c0 = _mm512_loadu_si512(w0 + t * kChannelBlock),
                  c1 = kPlanes == 2 ? _mm512_loadu_si512(w1 + t * kChannelBlock) : c0;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512i a0 = _mm512_set1_epi64(static_cast<long long>(words[kPlanes * r]));
      s0[r] = count_and_add<kPairs>(s0[r], _mm512_and_si512(a0, c0));
      if (kPlanes == 2) {
        const __m512i a1 = _mm512_set1_epi64(static_cast<long long>(words[2 * r + 1]));
        s1[r] = count_and_add<kPairs>(s1[r], _mm512_and_si512(a0, c1));
        s1[r] = count_and_add<kPairs>(s1[r], _mm512_and_si512(a1, c0));
        s2[r] = count_and_add<kPairs>(s2[r], _mm512_and_si512(a1, c1));
      }
    }
    words += kPlanes * R;
  } while (++t < steps);
  __m512i total[N];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (!kPairs) {
      total[r] = _mm512_add_epi64(
          s0[r], _mm512_slli_epi64(_mm512_add_epi64(s1[r], _mm512_slli_epi64(s2[r], 1)), 1));
      continue;
    }
    const __m512i sum =
        kPlanes == 1
            ? s0[r]
            : _mm512_add_epi32(s0[r], _mm512_slli_epi32(
                                          _mm512_add_epi32(s1[r], _mm512_slli_epi32(s2[r], 1)), 1));
    total[2 * r] = _mm512_and_si512(sum, _mm512_set1_epi64(0xffffffff));
    if (2 * r + 1 < N) total[2 * r + 1] = _mm512_srli_epi64(sum, 32);
  }
  finish_avx512<N, false>(c, ow0, b, total, total, a_sums);
}

// Columns [ow, ow + R) of every block, their words gathered once for all,
// and counted as they pass: a_sums[r] = sum a of column ow + r.
template <int R>
QLAB_AVX512 void w2a2_tile_avx512(const Row& c, std::int64_t ow, std::int32_t* a_sums) {
  thread_local std::vector<std::uint64_t> words;
  // Room for whole registers past the last row's 2 R words.
  words.resize(static_cast<std::size_t>(c.kernel * c.run * 2 * R + 16));
  std::uint64_t* to = words.data();
  if (c.column == 1) {
    // The columns' words lie side by side, at each word of a kernel row
    // (stride 1, one word a pixel or a window: LeNet's features.3): a load
    // of R words per plane, the two planes interleaved by a permute.
    const auto mask = static_cast<__mmask8>((1u << R) - 1);
    const __m512i low = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11),
                  high = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    __m512i sums = _mm512_setzero_si512();
    for (std::int64_t i = 0; i < c.kernel; ++i)
      for (std::int64_t l = 0; l < c.run; ++l, to += 2 * R) {
        const std::uint64_t* a = c.a + ow + i * c.kernel_row + l;
        const __m512i a0 = _mm512_maskz_loadu_epi64(mask, a),
                      a1 = _mm512_maskz_loadu_epi64(mask, a + c.a_plane);
        sums =
            _mm512_add_epi64(sums, _mm512_add_epi64(_mm512_popcnt_epi64(a0),
                                                    _mm512_slli_epi64(_mm512_popcnt_epi64(a1), 1)));
        _mm512_storeu_si512(to, _mm512_permutex2var_epi64(a0, low, a1));
        if (R > 4) _mm512_storeu_si512(to + 8, _mm512_permutex2var_epi64(a0, high, a1));
      }
    _mm256_mask_storeu_epi32(a_sums, mask, _mm512_cvtepi64_epi32(sums));
  } else {
    std::int64_t sums[R] = {};
    for (std::int64_t i = 0; i < c.kernel; ++i) {
      const std::uint64_t* a = c.a + ow * c.column + i * c.kernel_row;
      for (std::int64_t l = 0; l < c.run; ++l, to += 2 * R)
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const std::uint64_t a0 = a[r * c.column + l], a1 = a[r * c.column + l + c.a_plane];
          to[2 * r] = a0;
          to[2 * r + 1] = a1;
          sums[r] += __builtin_popcountll(a0) + 2 * __builtin_popcountll(a1);
        }
    }
    for (int r = 0; r < R; ++r) a_sums[r] = static_cast<std::int32_t>(sums[r]);
  }
  for (std::int64_t b = 0; b < c.blocks; ++b)
    block_one_pass_avx512<R, false>(c, words.data(), ow, b, a_sums);
}

// Columns [ow, ow + N) of every block of a paired layer of kPlanes planes,
// their words joined into pairs once for all and counted as they pass:
// a_sums[r] = sum a of column ow + r.
template <int N, int kPlanes>
QLAB_AVX512 void pair_tile_avx512(const Row& c, std::int64_t ow, std::int32_t* a_sums) {
  constexpr int P = (N + 1) / 2, kChunks = (N + 7) / 8;
  thread_local std::vector<std::uint64_t> pairs;
  // Room for a whole chunk's 8 words past the last row's kPlanes P.
  pairs.resize(static_cast<std::size_t>(c.kernel * kPlanes * P + 8));
  std::uint64_t* to = pairs.data();
  if (c.column == 1) {
    // 8 columns' words side by side a load per plane; VPMOVQD narrows them
    // to 4 pair words (the high halves are zero), a permute interleaves
    // two planes. Chunk h holds columns 8h .. min(8h + 8, N).
    const __m512i interleave = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);
    __m512i sums[kChunks];
    __mmask8 masks[kChunks];
#pragma GCC unroll 2
    for (int h = 0; h < kChunks; ++h) {
      sums[h] = _mm512_setzero_si512();
      masks[h] = static_cast<__mmask8>(N - 8 * h >= 8 ? 0xff : (1u << (N - 8 * h)) - 1);
    }
    for (std::int64_t i = 0; i < c.kernel; ++i, to += kPlanes * P) {
      const std::uint64_t* a = c.a + ow + i * c.kernel_row;
#pragma GCC unroll 2
      for (int h = 0; h < kChunks; ++h) {
        const __m512i a0 = _mm512_maskz_loadu_epi64(masks[h], a + 8 * h);
        if (kPlanes == 1) {
          sums[h] = _mm512_add_epi64(sums[h], _mm512_popcnt_epi64(a0));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + 4 * h), _mm512_cvtepi64_epi32(a0));
          continue;
        }
        const __m512i a1 = _mm512_maskz_loadu_epi64(masks[h], a + 8 * h + c.a_plane);
        sums[h] = _mm512_add_epi64(sums[h],
                                   _mm512_add_epi64(_mm512_popcnt_epi64(a0),
                                                    _mm512_slli_epi64(_mm512_popcnt_epi64(a1), 1)));
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a0)),
                                                _mm512_cvtepi64_epi32(a1), 1);
        _mm512_storeu_si512(to + 8 * h, _mm512_permutexvar_epi64(interleave, both));
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < kChunks; ++h)
      _mm256_mask_storeu_epi32(a_sums + 8 * h, masks[h], _mm512_cvtepi64_epi32(sums[h]));
  } else {
    std::int64_t sums[N] = {};
    for (std::int64_t i = 0; i < c.kernel; ++i, to += kPlanes * P) {
      const std::uint64_t* a = c.a + ow * c.column + i * c.kernel_row;
#pragma GCC unroll 16
      for (int r = 0; r < N; ++r) {
        const int shift = 32 * (r % 2);
        std::uint64_t* pair = to + kPlanes * (r / 2);
#pragma GCC unroll 2
        for (int p = 0; p < kPlanes; ++p) {
          const std::uint64_t word = a[r * c.column + p * c.a_plane];
          if (shift == 0) pair[p] = 0;
          pair[p] |= word << shift;
          sums[r] += static_cast<std::int64_t>(__builtin_popcountll(word)) << p;
        }
      }
    }
    for (int r = 0; r < N; ++r) a_sums[r] = static_cast<std::int32_t>(sums[r]);
  }
  for (std::int64_t b = 0; b < c.blocks; ++b)
    block_one_pass_avx512<N, true, kPlanes>(c, pairs.data(), ow, b, a_sums);
}

// Near-equal tiles: a 28-column row takes four of 7, not three of 8 and
// one of 4, which loads each weight for 4 columns only. Up to 8 columns
// (24 accumulators), or 12 paired (6 pairs, 18): LeNet's 10-column rows
// take one tile.
QLAB_AVX512 void w2a2_columns_avx512(const Row& c, std::int32_t* a_sums) {
  if (c.paired)
    for_tiles<12>(c.width, [&](std::int64_t ow, auto n) {
      pair_tile_avx512<decltype(n)::value, 2>(c, ow, a_sums + ow);
    });
  else
    for_tiles<8>(c.width, [&](std::int64_t ow, auto n) {
      w2a2_tile_avx512<decltype(n)::value>(c, ow, a_sums + ow);
    });
}

// Tile by tile of columns, every block: the tile's activation words stay in
// L1 while the blocks' weights pass over them.
template <int R, bool kBinary>
QLAB_AVX512 void tile_avx512(const Row& c, std::int64_t ow, std::int32_t* a_sums) {
  block_avx512<R, true, kBinary>(c, ow, 0, a_sums);
  for (std::int64_t b = 1; b < c.blocks; ++b) block_avx512<R, false, kBinary>(c, ow, b, a_sums);
}

QLAB_AVX512 void columns_avx512(const Row& c, std::int32_t* a_sums) {
  constexpr int kColumns = 8;
  std::int64_t ow = 0;
  for (; ow + kColumns <= c.width; ow += kColumns) tile_avx512<kColumns, false>(c, ow, a_sums + ow);
  for (; ow + 4 <= c.width; ow += 4) tile_avx512<4, false>(c, ow, a_sums + ow);
  for (; ow + 2 <= c.width; ow += 2) tile_avx512<2, false>(c, ow, a_sums + ow);
  for (; ow < c.width; ++ow) tile_avx512<1, false>(c, ow, a_sums + ow);
}

// W1A1 needs 2 R registers, not 4 R: a row splits into near-equal tiles of
// up to 12 columns, so that LeNet's 10-column rows take one tile, not a
// tile of 8 and a slower one of 2; paired, up to 16.
QLAB_AVX512 void binary_columns_avx512(const Row& c, std::int32_t* a_sums) {
  if (c.paired)
    for_tiles<16>(c.width, [&](std::int64_t ow, auto n) {
      pair_tile_avx512<decltype(n)::value, 1>(c, ow, a_sums + ow);
    });
  else
    for_tiles<12>(c.width, [&](std::int64_t ow, auto n) {
      tile_avx512<decltype(n)::value, true>(c, ow, a_sums + ow);
    });
}

QLAB_AVX512 void row_avx512(const Row& c, std::int32_t* a_sums) {
  if (c.a_planes == 1 && c.w_planes == 1)
    binary_columns_avx512(c, a_sums);
  else if (c.a_planes == 2 && c.w_planes == 2)
    w2a2_columns_avx512(c, a_sums);
  else
    columns_avx512(c, a_sums);
}

// 64 codes into 64 bits of each plane: a byte-wise test of bit p is a
// 64-bit mask. The last chunk is loaded under a mask, zeros past the end.
QLAB_AVX512 void pack_pixel_avx512(const std::uint8_t* codes, std::int64_t count, int planes,
                                   std::int64_t plane_stride, std::uint64_t* out) {
  for (std::int64_t ch = 0; ch < count; ch += 64) {
    const std::int64_t left = count - ch;
    const __mmask64 valid = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i v = _mm512_maskz_loadu_epi8(valid, codes + ch);
    for (int p = 0; p < planes; ++p)
      out[p * plane_stride + ch / 64] =
          _mm512_test_epi8_mask(v, _mm512_set1_epi8(static_cast<char>(1 << p)));
  }
}

// The one-word windows of a packed row (bits_at below, masked), 8 at a
// time: the row's stream, at most 8 words, sits in a register, and each
// lane picks its window's two words by permute and joins them by shifts
// (a shift by 64 leaves 0, so a whole-word start needs no branch). Window x
// starts at bit x cg.
QLAB_AVX512 void cut_windows_avx512(const std::uint64_t* stream, std::int64_t stream_words,
                                    std::int64_t cg, std::int64_t columns, std::uint64_t mask,
                                    std::uint64_t* dst) {
  const __m512i words =
      _mm512_maskz_loadu_epi64(static_cast<__mmask8>((1u << stream_words) - 1), stream);
  const __m512i low6 = _mm512_set1_epi64(63), one = _mm512_set1_epi64(1),
                sixty_four = _mm512_set1_epi64(64),
                keep = _mm512_set1_epi64(static_cast<long long>(mask));
  __m512i at = _mm512_setr_epi64(0, cg, 2 * cg, 3 * cg, 4 * cg, 5 * cg, 6 * cg, 7 * cg);
  const __m512i step = _mm512_set1_epi64(8 * cg);
  for (std::int64_t x = 0; x < columns; x += 8, at = _mm512_add_epi64(at, step)) {
    const __m512i index = _mm512_srli_epi64(at, 6), shift = _mm512_and_si512(at, low6);
    const __m512i low = _mm512_permutexvar_epi64(index, words),
                  high = _mm512_permutexvar_epi64(_mm512_add_epi64(index, one), words);
    const __m512i window =
        _mm512_or_si512(_mm512_srlv_epi64(low, shift),
                        _mm512_sllv_epi64(high, _mm512_sub_epi64(sixty_four, shift)));
    const std::int64_t left = std::min<std::int64_t>(8, columns - x);
    _mm512_mask_storeu_epi64(dst + x, static_cast<__mmask8>((1u << left) - 1),
                             _mm512_and_si512(window, keep));
  }
}

#pragma GCC diagnostic pop

// Bit p of 32 codes: shifting each 16-bit lane left by 7 - p puts bit p of
// both its bytes at their tops, which movemask gathers.
QLAB_AVX2 inline std::uint32_t plane_bits(__m256i codes, int p) {
  return static_cast<std::uint32_t>(
      _mm256_movemask_epi8(_mm256_sll_epi16(codes, _mm_cvtsi32_si128(7 - p))));
}

// Codes into bits of each plane, 32 at a time (plane_bits): whole words
// first, two masks each, so that a word is written once.
QLAB_AVX2 void pack_pixel_avx2(const std::uint8_t* codes, std::int64_t count, int planes,
                               std::int64_t plane_stride, std::uint64_t* out) {
  std::int64_t ch = 0;
  for (; ch + 64 <= count; ch += 64) {
    const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + ch)),
                  high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + ch + 32));
    for (int p = 0; p < planes; ++p)
      out[p * plane_stride + ch / 64] |=
          plane_bits(low, p) | static_cast<std::uint64_t>(plane_bits(high, p)) << 32;
  }
  for (; ch + 32 <= count; ch += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + ch));
    for (int p = 0; p < planes; ++p)
      out[p * plane_stride + ch / 64] |= static_cast<std::uint64_t>(plane_bits(v, p)) << (ch % 64);
  }
  for (; ch < count; ++ch)
    for (int p = 0; p < planes; ++p)
      out[p * plane_stride + ch / 64] |= static_cast<std::uint64_t>((codes[ch] >> p) & 1)
                                         << (ch % 64);
}

#endif

// One pixel's codes of one group into its words of each plane (zeroed
// first); planes lie `plane_stride` words apart.
void pack_pixel_portable(const std::uint8_t* codes, std::int64_t count, int planes,
                         std::int64_t plane_stride, std::uint64_t* out) {
  for (std::int64_t ch = 0; ch < count; ++ch)
    for (int p = 0; p < planes; ++p)
      out[p * plane_stride + ch / 64] |= static_cast<std::uint64_t>((codes[ch] >> p) & 1)
                                         << (ch % 64);
}

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument(what); }

void require_tables_fit(const ConvGeometry& g) {
  if (!tables_fit(g)) invalid("a layer this wide overflows the table kernels' sums");
}

// The 64 bits of a stream from bit `bit` on (the stream has a word past
// them). The second shift is split in two so that a whole-word start,
// shifting by 64, adds nothing and needs no branch.
inline std::uint64_t bits_at(const std::uint64_t* stream, std::uint64_t bit) {
  const std::uint64_t at = bit / 64, shift = bit % 64;
  return (stream[at] >> shift) | ((stream[at + 1] << 1) << (63 - shift));
}

}  // namespace

// Allocating per row cost LeNet's features.3 2 us in 65 (a thread's 32
// images) on bit planes, and 8% of its row's time on fields (39 of 480 ns,
// AVX2, old and new alternating in one process).
std::int32_t* sums_for(std::int64_t width) {
  thread_local std::vector<std::int32_t> sums;
  if (static_cast<std::int64_t>(sums.size()) < width) sums.resize(static_cast<std::size_t>(width));
  return sums.data();
}

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "portable";
  }
}

bool cpu_has(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::avx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq");
  if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#endif
  return isa == Isa::portable;
}

Isa best_isa() {
  static const Isa isa = [] {
    const char* forced = std::getenv("QLAB_BIT_ISA");
    if (!forced || !*forced)
      return cpu_has(Isa::avx512) ? Isa::avx512 : cpu_has(Isa::avx2) ? Isa::avx2 : Isa::portable;
    const std::string f = forced;
    for (Isa i : {Isa::portable, Isa::avx2, Isa::avx512})
      if (f == to_string(i)) {
        if (!cpu_has(i)) invalid("QLAB_BIT_ISA=" + f + ", but this CPU has no " + f);
        return i;
      }
    invalid("QLAB_BIT_ISA='" + f + "': expected portable, avx2 or avx512");
  }();
  return isa;
}

void ConvGeometry::check() const {
  if (batch < 1 || height < 1 || width < 1 || in_channels < 1 || out_channels < 1 || groups < 1 ||
      kernel < 1 || stride < 1 || padding < 0)
    invalid("a bit convolution needs positive sizes");
  if (in_channels % groups || out_channels % groups)
    invalid("a bit convolution's channels must divide into its groups");
  if (height + 2 * padding < kernel || width + 2 * padding < kernel)
    invalid("a bit convolution's kernel is larger than its padded input");
}

PackedWeights pack_weights(const ConvGeometry& g, const std::int8_t* codes, int planes, Isa isa,
                           Packing packing) {
  g.check();
  if (planes < 1 || planes > 2) invalid("bit kernels take 1- or 2-bit weights");
  const std::int64_t taps = g.kernel * g.kernel, fan_in = taps * g.group_in(),
                     count = g.out_channels * fan_in;
  // The grid, from the codes: their least value and the step between them.
  const auto [lo, hi] = std::minmax_element(codes, codes + count);
  int step = 0;
  for (std::int64_t i = 0; i < count; ++i) step = std::gcd(step, codes[i] - *lo);
  if (step == 0) step = 1;
  if ((*hi - *lo) / step >= (1 << planes))
    invalid("weight codes span more levels than " + std::to_string(planes) + " bit(s) hold");

  PackedWeights w;
  w.geometry = g;
  w.planes = planes;
  w.alpha = step;
  w.beta = *lo;
  const std::int64_t words = g.row_words(), nb = blocks(g);
  w.bits.assign(static_cast<std::size_t>(g.groups * nb * planes * g.kernel * words * kChannelBlock),
                0);
  w.code_sums.assign(static_cast<std::size_t>(g.out_channels), 0);
  const bool fields = packing == Packing::fields, tables = packing == Packing::tables;
  if (fields) w.fields.assign(static_cast<std::size_t>(weight_field_words(g)), 0);
  if (tables) {
    require_tables_fit(g);
    w.table_indices.assign(static_cast<std::size_t>(table_index_bytes(g)), 0);
  }
  for (std::int64_t oc = 0; oc < g.out_channels; ++oc) {
    const std::int64_t group = oc / g.group_out(), in_group = oc % g.group_out();
    const std::int64_t b = in_group / kChannelBlock, lane = in_group % kChannelBlock;
    for (std::int64_t t = 0; t < taps; ++t)
      for (std::int64_t ch = 0; ch < g.group_in(); ++ch) {
        const std::int8_t code = codes[oc * fan_in + t * g.group_in() + ch];
        w.code_sums[static_cast<std::size_t>(oc)] += code;
        const int level = (code - *lo) / step;
        // The bit's place in its kernel row, as the activations pack it.
        const std::int64_t row = t / g.kernel, tap = t % g.kernel;
        const std::int64_t bit = g.windowed() ? tap * g.group_in() + ch : tap * g.words() * 64 + ch;
        for (int q = 0; q < planes; ++q) {
          const std::int64_t at =
              ((((group * nb + b) * planes + q) * g.kernel + row) * words + bit / 64) *
                  kChannelBlock +
              lane;
          w.bits[static_cast<std::size_t>(at)] |= static_cast<std::uint64_t>((level >> q) & 1)
                                                  << (bit % 64);
        }
        if (fields) put_weight_field(g, oc, row, tap * g.group_in() + ch, level, w.fields);
        if (tables) put_table_index(g, oc, t, ch, level, w.table_indices);
      }
  }
  // Activation words use only their low half here: a weight copy in the
  // high half meets zeros, but in the paired kernel's broadcasts.
  if (g.paired())
    for (auto& word : w.bits) word |= word << 32;
  if (isa != Isa::avx2 || fields || tables) return w;
  constexpr std::uint64_t kLow = 0x0f0f0f0f0f0f0f0full;
  w.nibbles.resize(2 * w.bits.size());
  for (std::size_t i = 0; i < w.bits.size(); i += kChannelBlock)
    for (std::size_t lane = 0; lane < kChannelBlock; ++lane) {
      w.nibbles[2 * i + lane] = w.bits[i + lane] & kLow;
      w.nibbles[2 * i + kChannelBlock + lane] = (w.bits[i + lane] >> 4) & kLow;
    }
  return w;
}

const char* to_string(Packing packing) {
  switch (packing) {
    case Packing::fields:
      return "fields";
    case Packing::selected:
      return "selected sums";
    case Packing::winograd:
      return "winograd";
    case Packing::tables:
      return "tables";
    default:
      return "planes";
  }
}

Packing best_packing(Isa isa, int weight_planes, int activation_planes, bool linear) {
  if (linear && activation_planes == 1 && weight_planes > 2) return Packing::selected;
  return isa == Isa::avx2 && weight_planes == 2 && activation_planes == 2 && !linear
             ? Packing::fields
             : Packing::planes;
}

void prepare_activations(const ConvGeometry& g, int planes, PackedActivations& out,
                         Packing packing) {
  g.check();
  if (planes < 1 || planes > 2) invalid("bit kernels take 1- or 2-bit activations");
  out.geometry = g;
  out.planes = planes;
  out.packing = packing;
  if (packing == Packing::fields) {
    out.fields.resize(static_cast<std::size_t>(g.batch * g.groups * field_image_words(g)));
  } else if (packing == Packing::tables) {
    require_tables_fit(g);
    out.tables.resize(static_cast<std::size_t>(g.batch * g.groups * table_image_bytes(g)));
    out.window_sums.resize(
        static_cast<std::size_t>(g.batch * g.groups * g.out_height() * g.out_width()));
    out.table_offsets = table_offsets(g);
  } else
    out.bits.resize(static_cast<std::size_t>(g.batch * g.groups * planes * plane_words(g)));
}

void pack_activations(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                      std::int64_t last, PackedActivations& out, Isa isa) {
  if (out.packing == Packing::fields) {
    pack_fields(nhwc, pad_code, first, last, out, isa);
    return;
  }
  if (out.packing == Packing::tables) {
    pack_tables(nhwc, pad_code, first, last, out);
    return;
  }
  const ConvGeometry& g = out.geometry;
  const int planes = out.planes;
  const std::int64_t words = g.words(), stride = plane_words(g);
  const std::int64_t hp = g.padded_height(), wp = g.padded_width(), cg = g.group_in();
  auto pack = pack_pixel_portable;
#if defined(__x86_64__)
  if (isa == Isa::avx2) pack = pack_pixel_avx2;
  if (isa == Isa::avx512) pack = pack_pixel_avx512;
#endif
  if (!g.windowed()) {
    // The border: a real 0 in every channel, per plane.
    std::vector<std::uint64_t> border(static_cast<std::size_t>(planes * words), 0);
    const std::vector<std::uint8_t> zeros(static_cast<std::size_t>(cg), pad_code);
    pack_pixel_portable(zeros.data(), cg, planes, words, border.data());
    const auto put_border = [&](std::uint64_t* dst) {
      for (int p = 0; p < planes; ++p)
        std::copy(border.begin() + p * words, border.begin() + (p + 1) * words, dst + p * stride);
    };
    // Whole words a pixel and one group: an image row's codes pack in one
    // call, its pixels' words lying side by side as the row's.
    const bool rows = cg % 64 == 0 && g.groups == 1;
    for (std::int64_t n = first; n < last; ++n)
      for (std::int64_t group = 0; group < g.groups; ++group) {
        std::uint64_t* image = out.bits.data() + (n * g.groups + group) * planes * stride;
        for (std::int64_t y = 0; y < hp; ++y) {
          const std::int64_t iy = y - g.padding;
          if (rows && iy >= 0 && iy < g.height) {
            std::uint64_t* row = image + y * wp * words;
            for (std::int64_t x = 0; x < wp; ++x)
              if (x < g.padding || x >= g.padding + g.width) put_border(row + x * words);
            std::uint64_t* inside = row + g.padding * words;
            for (int p = 0; p < planes; ++p)
              std::fill(inside + p * stride, inside + p * stride + g.width * words, 0);
            pack(nhwc + (n * g.height + iy) * g.width * g.in_channels, g.width * cg, planes, stride,
                 inside);
            continue;
          }
          for (std::int64_t x = 0; x < wp; ++x) {
            std::uint64_t* dst = image + (y * wp + x) * words;
            for (int p = 0; p < planes; ++p)
              std::fill(dst + p * stride, dst + p * stride + words, 0);
            const std::int64_t ix = x - g.padding;
            if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) {
              put_border(dst);
              continue;
            }
            pack(nhwc + ((n * g.height + iy) * g.width + ix) * g.in_channels + group * cg, cg,
                 planes, stride, dst);
          }
        }
      }
    return;
  }
  // Windowed: a padded row's codes side by side, packed as one stream of
  // bits per plane (cg bits a pixel, a spare word at the end), then each
  // window of `kernel` pixels copied out of it.
  const std::int64_t row_words = g.row_words(), columns = row_columns(g);
  const std::int64_t stream_words = (wp * cg + 63) / 64 + 1;
  const int tail = static_cast<int>(g.kernel * cg - 64 * (row_words - 1));
  const std::uint64_t last_mask = tail == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << tail) - 1;
  // The line runs on to whole 32 codes, so that AVX2 packs it with no
  // code-by-code tail; the bits past the row fall in no window.
  const std::int64_t line_codes = (wp * cg + 31) / 32 * 32;
  std::vector<std::uint8_t> line(static_cast<std::size_t>(line_codes), pad_code);
  std::vector<std::uint64_t> stream(static_cast<std::size_t>(planes * stream_words));
  for (std::int64_t n = first; n < last; ++n)
    for (std::int64_t group = 0; group < g.groups; ++group) {
      std::uint64_t* image = out.bits.data() + (n * g.groups + group) * planes * stride;
      for (std::int64_t y = 0; y < hp; ++y) {
        const std::int64_t iy = y - g.padding;
        const bool inside = iy >= 0 && iy < g.height;
        // The border columns keep the pad code from line's start.
        const std::uint8_t* src =
            inside ? nhwc + (n * g.height + iy) * g.width * g.in_channels : nullptr;
        if (!inside)
          std::fill(line.begin(), line.begin() + wp * cg, pad_code);
        else if (g.groups == 1)
          std::copy_n(src, g.width * cg, line.begin() + g.padding * cg);
        else
          for (std::int64_t ix = 0; ix < g.width; ++ix)
            std::copy_n(src + ix * g.in_channels + group * cg, cg,
                        line.begin() + (ix + g.padding) * cg);
        std::fill(stream.begin(), stream.end(), 0);
        pack(line.data(), line_codes, planes, stream_words, stream.data());
        for (int p = 0; p < planes; ++p) {
          const std::uint64_t* bits = stream.data() + p * stream_words;
          std::uint64_t* dst = image + p * stride + y * columns * row_words;
#if defined(__x86_64__)
          if (isa == Isa::avx512 && row_words == 1 && stream_words <= 8) {
            cut_windows_avx512(bits, stream_words, cg, columns, last_mask, dst);
            continue;
          }
#endif
          for (std::int64_t x = 0; x < columns; ++x, dst += row_words)
            for (std::int64_t k = 0; k < row_words; ++k)
              dst[k] = bits_at(bits, static_cast<std::uint64_t>(x * cg + 64 * k)) &
                       (k + 1 == row_words ? last_mask : ~std::uint64_t{0});
        }
      }
    }
}

namespace {

// What one call computes: output row `oh` of image `n`, or, where `images`
// is set, images [n, n + images) of a layer with one output pixel each.
struct Span {
  std::int64_t n, oh, images;
};

// Images of one output pixel run as the columns of one row, lying one
// image's words apart, so that the kernels' column tiles share each weight
// load among several images as they do among a row's columns.
Row span_row(const PackedActivations& x, const PackedWeights& w, const Span& s, std::int64_t g,
             std::int32_t* out) {
  if (s.images == 0) return row_of(x, w, s.n, s.oh, g, out);
  Row r = row_of(x, w, s.n, 0, g, out);
  r.column = x.geometry.groups * x.planes * plane_words(x.geometry);
  r.width = s.images;
  return r;
}

// Output columns of a span's row.
std::int64_t width_of(const PackedActivations& x, const Span& s) {
  return s.images ? s.images : x.geometry.out_width();
}

void span_dots(const PackedActivations& x, const PackedWeights& w, const Span& s, std::int32_t* out,
               Isa isa) {
  std::int32_t* a_sums = sums_for(width_of(x, s));
  for (std::int64_t group = 0; group < x.geometry.groups; ++group) {
    const Row row = span_row(x, w, s, group, out);
#if defined(__x86_64__)
    if (isa == Isa::avx512) {
      row_avx512(row, a_sums);
      continue;
    }
    if (isa == Isa::avx2) {
      row_avx2(row, a_sums);
      continue;
    }
#endif
    row_portable(row, a_sums);
  }
}

void span_codes(const PackedActivations& x, const PackedWeights& w, const Span& s, const Requant& q,
                std::uint8_t* out, Isa isa) {
  const ConvGeometry& g = x.geometry;
  const std::int64_t width = width_of(x, s);
#if defined(__x86_64__)
  if (isa != Isa::portable) {
    std::int32_t* a_sums = sums_for(width);
    for (std::int64_t group = 0; group < g.groups; ++group) {
      Row row = span_row(x, w, s, group, nullptr);
      const std::int64_t first = group * g.group_out();
      const Requant shifted = q.from(first);
      row.requant = &shifted;
      row.codes = out + first;
      if (isa == Isa::avx512)
        row_avx512(row, a_sums);
      else
        row_avx2(row, a_sums);
    }
    return;
  }
#endif
  thread_local std::vector<std::int32_t> dots;
  dots.resize(static_cast<std::size_t>(width * g.out_channels));
  span_dots(x, w, s, dots.data(), isa);
  requantize(dots.data(), width, g.out_channels, q.m, q.c, q.lo, q.hi, out);
}

void require_one_pixel(const PackedActivations& x) {
  if (x.packing != Packing::planes || x.geometry.out_height() != 1 || x.geometry.out_width() != 1)
    invalid("image spans take bit planes of layers with one output pixel");
}

}  // namespace

void conv_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
              std::int32_t* out, Isa isa) {
  if (x.packing == Packing::fields) {
    field_row(x, w, n, oh, nullptr, out, nullptr, isa);
    return;
  }
  if (x.packing == Packing::tables) {
    table_row(x, w, n, oh, nullptr, out, nullptr, isa);
    return;
  }
  span_dots(x, w, {n, oh, 0}, out, isa);
}

void conv_row_codes(const PackedActivations& x, const PackedWeights& w, std::int64_t n,
                    std::int64_t oh, const Requant& q, std::uint8_t* out, Isa isa) {
  if (x.packing == Packing::fields) {
    field_row(x, w, n, oh, &q, nullptr, out, isa);
    return;
  }
  if (x.packing == Packing::tables) {
    table_row(x, w, n, oh, &q, nullptr, out, isa);
    return;
  }
  span_codes(x, w, {n, oh, 0}, q, out, isa);
}

void conv_images(const PackedActivations& x, const PackedWeights& w, std::int64_t first,
                 std::int64_t last, std::int32_t* out, Isa isa) {
  require_one_pixel(x);
  span_dots(x, w, {first, 0, last - first}, out, isa);
}

void conv_images_codes(const PackedActivations& x, const PackedWeights& w, std::int64_t first,
                       std::int64_t last, const Requant& q, std::uint8_t* out, Isa isa) {
  require_one_pixel(x);
  span_codes(x, w, {first, 0, last - first}, q, out, isa);
}

namespace {

// The greatest int32 dot whose code is below `level`: INT32_MAX where no
// dot reaches it, INT32_MIN where every one does; else found from the
// real-valued crossing by a bracket that doubles until it holds the step,
// then halves: a few code_of calls a threshold, once per input grid of a
// layer (BitLayer keeps them).
std::int32_t last_below(double m, double c, double lo, double hi, double level) {
  constexpr std::int64_t kLeast = std::numeric_limits<std::int32_t>::min(),
                         kMost = std::numeric_limits<std::int32_t>::max();
  const auto reaches = [&](std::int64_t d) {
    return code_of(m, static_cast<std::int32_t>(d), c, lo, hi) >= level;
  };
  if (!reaches(kMost)) return static_cast<std::int32_t>(kMost);
  if (reaches(kLeast)) return static_cast<std::int32_t>(kLeast);
  const double crossing = std::floor((level - 0.5 - c) / m);
  const auto guess = static_cast<std::int64_t>(
      std::clamp(crossing, static_cast<double>(kLeast), static_cast<double>(kMost - 1)));
  std::int64_t below = guess, reached = guess;
  for (std::int64_t step = 1; reaches(below); step *= 2) {
    reached = below;
    below = std::max(kLeast, below - step);
  }
  for (std::int64_t step = 1; !reaches(reached); step *= 2) {
    below = reached;
    reached = std::min(kMost, reached + step);
  }
  while (reached - below > 1) {
    const std::int64_t mid = below + (reached - below) / 2;
    (reaches(mid) ? reached : below) = mid;
  }
  return static_cast<std::int32_t>(below);
}

}  // namespace

std::vector<std::int32_t> requant_thresholds(const double* m, const double* c,
                                             std::int64_t channels, double lo, double hi) {
  const double levels = hi - lo;
  if (!(levels >= 1 && levels <= kMaxThresholds)) return {};
  for (std::int64_t k = 0; k < channels; ++k)
    if (!(m[k] > 0) || !std::isfinite(m[k]) || !std::isfinite(c[k])) return {};
  std::vector<std::int32_t> out(static_cast<std::size_t>(levels) * channels);
  for (int j = 0; j < static_cast<int>(levels); ++j)
    for (std::int64_t k = 0; k < channels; ++k)
      out[j * channels + k] = last_below(m[k], c[k], lo, hi, lo + j + 1);
  return out;
}

void requantize(const std::int32_t* dots, std::int64_t count, std::int64_t channels,
                const double* m, const double* c, double lo, double hi, std::uint8_t* out) {
  for (std::int64_t i = 0; i < count; ++i, dots += channels, out += channels)
    for (std::int64_t k = 0; k < channels; ++k) out[k] = code_of(m[k], dots[k], c[k], lo, hi);
}

}  // namespace qlab::bits
