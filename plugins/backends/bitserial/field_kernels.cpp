// Convolution on packed fields (bit_kernels.hpp, Packing::fields): each
// 32-bit word holds four codes of at most 2 bits, two to each 16-bit half,
// kFieldBits apart. vpmaddwd of an activation word and a weight word sums
// four code products into the middle field of a 32-bit lane; the kernels
// accumulate raw words and read the middle fields out every kWordsPerRead
// words, before the fields below them can carry into them. The field above
// may wrap past bit 31: no bit of it reaches down.
#include "field_kernels.hpp"

#include "avx2_store.hpp"
#include "row_output.hpp"

#include <algorithm>
#include <vector>

namespace qlab::bits {
namespace {

constexpr int kFieldBits = 13;
constexpr std::uint32_t kFieldMask = (1u << kFieldBits) - 1;
// A word adds at most 2 x 9 to the low field and 4 x 9 to the middle one.
constexpr int kWordsPerRead = static_cast<int>(kFieldMask / 36);
// Where an activation word keeps its codes 0..3, low bit first; a weight
// word keeps each half's two in reverse order.
constexpr int kActivationShift[4] = {0, kFieldBits, 16, 16 + kFieldBits};
constexpr int kWeightShift[4] = {kFieldBits, 0, 16 + kFieldBits, 16};

bool dense(const ConvGeometry& g) { return g.group_in() % 4 == 0; }
// Columns of a packed row: every padded pixel (dense), or every column a
// kernel row can start at; and the words at each.
std::int64_t columns(const ConvGeometry& g) {
  return dense(g) ? g.padded_width() : g.padded_width() - g.kernel + 1;
}
std::int64_t column_words(const ConvGeometry& g) {
  return dense(g) ? g.group_in() / 4 : g.field_words();
}
std::int64_t blocks(const ConvGeometry& g) {
  return (g.group_out() + kFieldBlock - 1) / kFieldBlock;
}

// One output row of one group, as the kernels read it.
struct FieldRow : RowOutput {
  const std::uint32_t* a;  // kernel row 0 under output column 0
  std::int64_t kernel_row, column, kernel, run;
  const std::uint32_t* w;    // block 0 of kFieldBlock channels: [block][kernel row][word][lane]
  std::int64_t block_words;  // words of one block
  std::int64_t blocks;
};

// The sum of an activation word's four codes.
inline std::uint32_t word_sum(std::uint32_t v) {
  return (v & 3) + ((v >> kFieldBits) & 3) + ((v >> 16) & 3) + (v >> (16 + kFieldBits));
}

// One vpmaddwd lane: an activation word times a weight word, half by half
// (each half a non-negative int16); its middle field is the sum of the four
// code products.
inline std::uint32_t product(std::uint32_t a, std::uint32_t w) {
  return (a & 0xffff) * (w & 0xffff) + (a >> 16) * (w >> 16);
}

// `count` codes as ceil(count / 4) activation words, zero codes past the end.
void encode_portable(const std::uint8_t* codes, std::int64_t count, std::uint32_t* out) {
  for (std::int64_t i = 0; i < count; i += 4) {
    std::uint32_t word = 0;
    for (std::int64_t k = 0; k < 4 && i + k < count; ++k)
      word |= static_cast<std::uint32_t>(codes[i + k] & 3) << kActivationShift[k];
    out[i / 4] = word;
  }
}

void row_portable(const FieldRow& c) {
  for (std::int64_t ow = 0; ow < c.width; ++ow) {
    const std::uint32_t* a = c.a + ow * c.column;
    std::int64_t a_sum = 0;
    for (std::int64_t i = 0; i < c.kernel; ++i)
      for (std::int64_t l = 0; l < c.run; ++l) a_sum += word_sum(a[i * c.kernel_row + l]);
    for (std::int64_t b = 0; b < c.blocks; ++b)
      for (std::int64_t lane = 0; lane < std::min(kFieldBlock, c.group_out - b * kFieldBlock);
           ++lane) {
        const std::uint32_t* w = c.w + b * c.block_words + lane;
        std::uint32_t acc = 0;
        std::int64_t sum = 0;
        int pending = 0;
        for (std::int64_t i = 0; i < c.kernel; ++i)
          for (std::int64_t l = 0; l < c.run; ++l, w += kFieldBlock) {
            acc += product(a[i * c.kernel_row + l], *w);
            if (++pending == kWordsPerRead) {
              sum += (acc >> kFieldBits) & kFieldMask;
              acc = 0;
              pending = 0;
            }
          }
        sum += (acc >> kFieldBits) & kFieldMask;
        c.put(ow, b * kFieldBlock + lane,
              static_cast<std::int32_t>(c.alpha * sum + c.beta * a_sum));
      }
  }
}

#if defined(__x86_64__)

// As encode_portable, but `codes` must be readable up to 32 bytes past the
// last multiple of 32 below count (pack_fields pads its line so): the last
// words come from one load, the codes past count masked off. A kernel row's
// window of LeNet's features.3 is 30 codes, which went code by code.
QLAB_AVX2 void encode_avx2(const std::uint8_t* codes, std::int64_t count, std::uint32_t* out) {
  const __m256i even = _mm256_set1_epi32(0x00030003), odd = _mm256_set1_epi32(0x03000300);
  // Bytes 1 and 3 of each word move up from bits 8 and 24 to 13 and 29.
  const auto encode = [&](__m256i v) QLAB_AVX2 {
    return _mm256_or_si256(_mm256_and_si256(v, even),
                           _mm256_slli_epi32(_mm256_and_si256(v, odd), 5));
  };
  std::int64_t i = 0;
  for (; i + 32 <= count; i += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i / 4),
                        encode(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i))));
  if (i == count) return;
  const auto left = static_cast<int>(count - i);
  const __m256i index =
      _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                       22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const __m256i keep = _mm256_cmpgt_epi8(_mm256_set1_epi8(static_cast<char>(left)), index);
  const __m256i words = _mm256_cmpgt_epi32(_mm256_set1_epi32((left + 3) / 4),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i));
  _mm256_maskstore_epi32(reinterpret_cast<int*>(out + i / 4), words,
                         encode(_mm256_and_si256(v, keep)));
}

// The sum of the codes in `acc`'s lanes, each lane (a0 + a2) + X (a1 + a3)
// summed over words.
QLAB_AVX2 inline std::int64_t lane_sums(__m256i acc) {
  const __m256i fields = _mm256_add_epi32(_mm256_and_si256(acc, _mm256_set1_epi32(kFieldMask)),
                                          _mm256_srli_epi32(acc, kFieldBits));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(fields), _mm256_extracti128_si256(fields, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// sum a over each output column's receptive field: each word's two halves
// summed by vpmaddwd, read out every 1024 words of a lane, before the low
// field (at most 6 a word) reaches X.
QLAB_AVX2 void column_sums_avx2(const FieldRow& c, std::int32_t* sums) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (std::int64_t ow = 0; ow < c.width; ++ow) {
    std::int64_t sum = 0;
    __m256i acc = _mm256_setzero_si256();
    int pending = 0;
    for (std::int64_t i = 0; i < c.kernel; ++i) {
      const std::uint32_t* a = c.a + ow * c.column + i * c.kernel_row;
      std::int64_t l = 0;
      for (; l + 8 <= c.run; l += 8) {
        acc = _mm256_add_epi32(
            acc,
            _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + l)), ones));
        if (++pending == 1024) {
          sum += lane_sums(acc);
          acc = _mm256_setzero_si256();
          pending = 0;
        }
      }
      for (; l < c.run; ++l) sum += word_sum(a[l]);
    }
    sums[ow] = static_cast<std::int32_t>(sum + lane_sums(acc));
  }
}

// Adds the middle fields of the accumulators to the totals (kept in
// memory: they are touched once every kWordsPerRead words) and clears them.
template <int N>
QLAB_AVX2 inline void read(__m256i (&acc)[N], std::int32_t (&total)[N][kChannelBlock]) {
  const __m256i mask = _mm256_set1_epi32(kFieldMask);
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) {
    auto* t = reinterpret_cast<__m256i*>(total[k]);
    _mm256_store_si256(
        t, _mm256_add_epi32(_mm256_load_si256(t),
                            _mm256_and_si256(_mm256_srli_epi32(acc[k], kFieldBits), mask)));
    acc[k] = _mm256_setzero_si256();
  }
}

// R consecutive output columns of block b, its channels in H registers of
// 8: each activation word is broadcast and multiplied with the block's
// weight words.
template <int R, int H>
QLAB_AVX2 void block_avx2(const FieldRow& c, std::int64_t ow0, std::int64_t b,
                          const std::int32_t* sums) {
  constexpr int N = R * H;  // accumulators: column r, half h at r H + h
  __m256i acc[N];
  alignas(32) std::int32_t total[N][kChannelBlock] = {};
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_si256();
  const std::int64_t column = c.column;
  const std::uint32_t* a = c.a + ow0 * column;
  const std::uint32_t* w = c.w + b * c.block_words;
  std::int64_t pending = 0;
  for (std::int64_t i = 0; i < c.kernel; ++i, a += c.kernel_row)
    for (std::int64_t l0 = 0; l0 < c.run;) {
      // Up to the next read, a loop of multiply-adds alone (GCC keeps the
      // accumulators in registers only so).
      const std::int64_t l1 = std::min(c.run, l0 + kWordsPerRead - pending);
      for (std::int64_t l = l0; l < l1; ++l, w += kFieldBlock) {
        __m256i wk[H];
#pragma GCC unroll 2
        for (int h = 0; h < H; ++h)
          wk[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + h * kChannelBlock));
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m256i v = _mm256_set1_epi32(static_cast<int>(a[r * column + l]));
#pragma GCC unroll 2
          for (int h = 0; h < H; ++h)
            acc[r * H + h] = _mm256_add_epi32(acc[r * H + h], _mm256_madd_epi16(v, wk[h]));
        }
      }
      pending += l1 - l0;
      l0 = l1;
      if (pending == kWordsPerRead) {
        read<N>(acc, total);
        pending = 0;
      }
    }
  read<N>(acc, total);
  // alpha sum a c + beta sum a.
  const __m256i alpha = _mm256_set1_epi32(c.alpha);
  BlockRequant requant[H] = {};
#pragma GCC unroll 2
  for (int h = 0; h < H; ++h)
    if (const std::int64_t lanes = c.lanes(b, h * kChannelBlock); c.requant && lanes > 0)
      requant[h] =
          block_requant(*c.requant, c.first_channel + b * kFieldBlock + h * kChannelBlock, lanes);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) {
      const __m256i sum = _mm256_load_si256(reinterpret_cast<const __m256i*>(total[r * H + h]));
      const __m256i dot =
          _mm256_add_epi32(_mm256_mullo_epi32(sum, alpha), _mm256_set1_epi32(c.beta * sums[r]));
      const std::int64_t k = b * kFieldBlock + h * kChannelBlock, ow = ow0 + r;
      if (const std::int64_t lanes = c.lanes(b, h * kChannelBlock); lanes > 0)
        store_dots_avx2(dot, lanes, c.requant ? &requant[h] : nullptr,
                        c.requant ? nullptr : c.dots + ow * c.out_column + k,
                        c.requant ? c.codes + ow * c.out_column + k : nullptr);
    }
}

template <int R>
QLAB_AVX2 void tile_avx2(const FieldRow& c, std::int64_t ow, const std::int32_t* sums) {
  for (std::int64_t b = 0; b < c.blocks; ++b)
    if (c.lanes(b, kChannelBlock) > 0)
      block_avx2<R, 2>(c, ow, b, sums);
    else
      block_avx2<R, 1>(c, ow, b, sums);
}

// Tile by tile of columns, every block: the tile's activation words stay in
// L1 while the blocks' weights pass over them.
QLAB_AVX2 void row_avx2(const FieldRow& c, std::int32_t* sums) {
  column_sums_avx2(c, sums);
  std::int64_t ow = 0;
  for (; ow + 6 <= c.width; ow += 6) tile_avx2<6>(c, ow, sums + ow);
  for (; ow + 4 <= c.width; ow += 4) tile_avx2<4>(c, ow, sums + ow);
  for (; ow + 2 <= c.width; ow += 2) tile_avx2<2>(c, ow, sums + ow);
  for (; ow < c.width; ++ow) tile_avx2<1>(c, ow, sums + ow);
}

#endif

}  // namespace

std::int64_t weight_field_words(const ConvGeometry& g) {
  return g.groups * blocks(g) * g.kernel * g.field_words() * kFieldBlock;
}

void put_weight_field(const ConvGeometry& g, std::int64_t oc, std::int64_t row, std::int64_t at,
                      int level, std::vector<std::uint32_t>& fields) {
  // [group][block][kernel row][field word][lane]
  const std::int64_t group = oc / g.group_out(), in_group = oc % g.group_out();
  const std::int64_t word =
      (((group * blocks(g) + in_group / kFieldBlock) * g.kernel + row) * g.field_words() + at / 4) *
          kFieldBlock +
      in_group % kFieldBlock;
  fields[static_cast<std::size_t>(word)] |= static_cast<std::uint32_t>(level)
                                            << kWeightShift[at % 4];
}

std::int64_t field_image_words(const ConvGeometry& g) {
  return g.padded_height() * columns(g) * column_words(g);
}

void pack_fields(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                 std::int64_t last, PackedActivations& out, Isa isa) {
  const ConvGeometry& g = out.geometry;
  auto encode = encode_portable;
#if defined(__x86_64__)
  if (isa != Isa::portable) encode = encode_avx2;
#endif
  const std::int64_t cg = g.group_in(), wp = g.padded_width(), hp = g.padded_height();
  const std::int64_t row_words = columns(g) * column_words(g), image = field_image_words(g);
  // 32 codes of slack for encode_avx2's last load.
  std::vector<std::uint8_t> line(static_cast<std::size_t>(wp * cg + 32), pad_code);
  for (std::int64_t n = first; n < last; ++n)
    for (std::int64_t group = 0; group < g.groups; ++group)
      for (std::int64_t y = 0; y < hp; ++y) {
        // A padded row's codes side by side; the border keeps the pad code
        // that the line starts with.
        const std::int64_t iy = y - g.padding;
        if (iy < 0 || iy >= g.height) {
          std::fill(line.begin(), line.begin() + wp * cg, pad_code);
        } else {
          const std::uint8_t* src = nhwc + (n * g.height + iy) * g.width * g.in_channels;
          if (g.groups == 1)
            std::copy_n(src, g.width * cg, line.begin() + g.padding * cg);
          else
            for (std::int64_t ix = 0; ix < g.width; ++ix)
              std::copy_n(src + ix * g.in_channels + group * cg, cg,
                          line.begin() + (ix + g.padding) * cg);
        }
        std::uint32_t* dst = out.fields.data() + (n * g.groups + group) * image + y * row_words;
        if (dense(g)) {
          encode(line.data(), wp * cg, dst);
          continue;
        }
        for (std::int64_t x = 0; x < columns(g); ++x)
          encode(line.data() + x * cg, g.kernel * cg, dst + x * g.field_words());
      }
}

void field_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
               const Requant* q, std::int32_t* dots, std::uint8_t* codes, Isa isa) {
  const ConvGeometry& g = x.geometry;
  std::int32_t* sums = sums_for(g.out_width());
  const std::int64_t row_words = columns(g) * column_words(g);
  for (std::int64_t group = 0; group < g.groups; ++group) {
    FieldRow r;
    static_cast<RowOutput&>(r) = row_output(g, w, group, q, dots, codes);
    r.kernel_row = row_words;
    r.a =
        x.fields.data() + (n * g.groups + group) * field_image_words(g) + oh * g.stride * row_words;
    r.column = g.stride * column_words(g);
    r.kernel = g.kernel;
    r.run = g.field_words();
    r.blocks = blocks(g);
    r.block_words = g.kernel * r.run * kFieldBlock;
    r.w = w.fields.data() + group * r.blocks * r.block_words;
#if defined(__x86_64__)
    if (isa != Isa::portable) {
      row_avx2(r, sums);
      continue;
    }
#endif
    row_portable(r);
  }
}

}  // namespace qlab::bits
