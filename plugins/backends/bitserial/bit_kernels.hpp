#pragma once
// Convolution on bit planes: the integer dot products of a conv2d (or a
// linear layer, a 1x1 convolution of a 1x1 map) whose activation codes have
// 1 or 2 bits and whose weight codes have 1 or 2, by AND and popcount.
//
// An activation code a (in [0, 2^A)) is the sum of its planes 2^p a_p; a
// weight's int8 code w is alpha c + beta for an unsigned code c in [0, 2^B)
// with planes c_q (binary {-1, +1}: alpha 2, beta -1; DoReFa's odd codes
// {-3, -1, 1, 3}: alpha 2, beta -3; a 2-bit grid {-2 .. 1}: alpha 1, beta
// -2). Over a receptive field,
//
//   sum a w = alpha sum_p sum_q 2^(p+q) popcount(A_p & C_q) + beta sum a,
//
// exact in integers: the same dot an int8 kernel sums from the same codes.
// Bits are packed 64 channels to a word, per pixel, group and plane; each
// tap of a kernel window starts a new word, so no im2col is built, and a
// kernel row of a plane is one run of words in memory. Where that wastes
// words (fewer than 64 channels: LeNet's 6 take 6 bits of each word), a
// kernel row's taps are packed densely instead, `kernel` pixels' channels
// side by side, one such window per column: an im2col along rows only.
//
// A 2-bit by 2-bit layer takes four plane pairs this way, and on AVX2 that
// is as slow as int8. It runs instead on packed fields (Packing::fields):
// four codes to a 32-bit word, two to each 16-bit half, 2^13 apart. One
// vpmaddwd of an activation word and a weight word holding its codes in the
// opposite order sums four products into the middle field,
//
//   (a0 + X a1)(c1 + X c0) + (a2 + X a3)(c3 + X c2)
//     = (a0 c1 + a2 c3) + X (a0 c0 + a1 c1 + a2 c2 + a3 c3) + X^2 (a1 c0 + a3 c2),
//
// the packing of several narrow operands into one wide multiply of ULPPACK
// (Won et al., MLSys 2022); int8 needs two multiplies for four products.
//
// Nothing here depends on LibTorch: bit_layers.hpp wraps it for tensors.
#include <cstdint>
#include <string>
#include <vector>

namespace qlab::bits {

/// Which instructions the popcount loop uses: AVX-512 with VPOPCNTQ (one
/// count per 64-bit lane), AVX2 (bytes counted by nibble lookups, Mula,
/// Kurz and Lemire 2016, on weights stored split into nibbles), or
/// portable C++.
enum class Isa { portable, avx2, avx512 };
const char* to_string(Isa isa);

/// Whether this CPU (and its OS) can run `isa`.
bool cpu_has(Isa isa);
/// The best this CPU runs; QLAB_BIT_ISA=portable|avx2|avx512 forces it, and
/// an unknown value or one this CPU lacks is an error naming the variable.
Isa best_isa();

/// A grouped 2-D convolution, NHWC, square kernel, stride and padding.
struct ConvGeometry {
  std::int64_t batch = 1, height = 1, width = 1;
  std::int64_t in_channels = 1, out_channels = 1, groups = 1;
  std::int64_t kernel = 1, stride = 1, padding = 0;

  std::int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  std::int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
  std::int64_t padded_height() const { return height + 2 * padding; }
  std::int64_t padded_width() const { return width + 2 * padding; }
  std::int64_t group_in() const { return in_channels / groups; }
  std::int64_t group_out() const { return out_channels / groups; }
  /// 64-bit words per plane of one group's channels at one pixel.
  std::int64_t words() const { return (group_in() + 63) / 64; }
  /// Whether a kernel row's taps are packed densely (fewer words).
  bool windowed() const { return (kernel * group_in() + 63) / 64 < kernel * words(); }
  /// Whether a kernel row's taps fill at most half a word, so that two
  /// columns' rows can share one: the weights are then packed twice in
  /// each word, and the AVX2 W1A1 kernel and the AVX-512 W1A1 and W2A2
  /// kernels count two columns in one pass.
  bool paired() const { return windowed() && kernel * group_in() <= 32; }
  /// Words of one kernel row of one plane.
  std::int64_t row_words() const {
    return windowed() ? (kernel * group_in() + 63) / 64 : kernel * words();
  }
  /// 32-bit words of one kernel row of packed fields (four codes a word).
  std::int64_t field_words() const { return (kernel * group_in() + 3) / 4; }
  /// Throws std::invalid_argument naming what does not fit.
  void check() const;
};

/// Output channels the kernels compute together (one 64-bit lane each).
inline constexpr std::int64_t kChannelBlock = 8;

/// How activations are packed, and so which kernel runs: bit planes (AND
/// and popcount) or fields (multiply-add, AVX2 or portable; see above; an
/// AVX-512 CPU runs the AVX2 kernel); or, for a linear layer on one-bit
/// inputs, not at all: their bits select weights to add (selected_sums.hpp);
/// or, for a 3x3 convolution, as bytes transformed by Winograd's F(2x2,
/// 3x3) (winograd_kernels.hpp; VNNI, AVX2 or portable); or as tables of
/// products that a byte shuffle looks up (table_kernels.hpp; AVX2 or
/// portable, for layers that tables_fit()).
enum class Packing { planes, fields, selected, winograd, tables };
const char* to_string(Packing packing);

/// The faster packing for this layer on `isa`, as measured by
/// `qlab_bench --benchmark_filter=bits/`: fields for a conv2d of 2-bit
/// weights and activations on AVX2; selected sums for a linear layer of
/// one-bit inputs and weights wider than 2 bits, which have no other; planes
/// otherwise (at 1 bit, on AVX-512's VPOPCNTQ, and for linear layers, whose
/// one output column per row reads each weight once, so that the planes' 4x
/// fewer bytes win).
Packing best_packing(Isa isa, int weight_planes, int activation_planes, bool linear);

/// Output channels of a block of packed fields (one AVX-512 register).
inline constexpr std::int64_t kFieldBlock = 16;

/// A layer's weights as bit planes, blocked by kChannelBlock output
/// channels: [group][block][weight plane][kernel row][row word][lane].
struct PackedWeights {
  ConvGeometry geometry;
  int planes = 1;  ///< weight planes, B
  std::int32_t alpha = 1, beta = 0;
  std::vector<std::uint64_t> bits;
  /// `bits` split into nibbles for the AVX2 lookups (packed for AVX2
  /// planes only): per word of `bits`' layout, the block's 8 lanes masked
  /// to the low nibble of each byte, then the 8 lanes shifted down by 4 and
  /// masked the same.
  std::vector<std::uint64_t> nibbles;
  /// The unsigned codes c as fields (packed for Packing::fields only), in
  /// blocks of kFieldBlock channels: [group][block][kernel row][field
  /// word][lane].
  std::vector<std::uint32_t> fields;
  /// Per output channel and input channel pair, the byte c0 + 4 c1 (packed
  /// for Packing::tables only; layout in table_kernels.cpp).
  std::vector<std::uint8_t> table_indices;
  std::vector<std::int32_t> code_sums;  ///< per output channel: sum of its int8 codes
};

/// Packs int8 weight codes in (out, kernel row, kernel column, in / groups)
/// order, for the kernel that `isa` and `packing` choose. Throws
/// std::invalid_argument when the codes are not alpha c + beta for
/// unsigned c of at most `planes` bits.
PackedWeights pack_weights(const ConvGeometry& g, const std::int8_t* codes, int planes, Isa isa,
                           Packing packing);

/// A batch of activation codes as bit planes, with its padding border
/// filled with `pad_code` (the code of a real 0): [image][group][plane]
/// [row][column][word] over the padded map; windowed, [image][group][plane]
/// [row][window's first column][row word]. Packed as fields, in `fields`:
/// [image][group][row][column][field word], a pixel's channels side by side
/// when they fill whole words (a multiple of 4), else one window of a
/// kernel row per column, zero codes filling its last word. Packed as
/// tables, in `tables` (16 bytes per pixel and channel pair; layout in
/// table_kernels.cpp), with each output pixel's receptive-field code sum in
/// `window_sums` ([image][group][output row][output column]) and where its
/// lookups read in `table_offsets`.
struct PackedActivations {
  ConvGeometry geometry;
  int planes = 1;  ///< activation planes, A
  Packing packing = Packing::planes;
  std::vector<std::uint64_t> bits;
  std::vector<std::uint32_t> fields;
  std::vector<std::uint8_t> tables;
  std::vector<std::int32_t> window_sums;
  std::vector<std::int32_t> table_offsets;
};

/// Packs codes (uint8, NHWC, each below 2^planes) of images [first, last).
/// `out` must be sized by prepare_activations first; ranges may run in
/// parallel.
void prepare_activations(const ConvGeometry& g, int planes, PackedActivations& out,
                         Packing packing = Packing::planes);
void pack_activations(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                      std::int64_t last, PackedActivations& out, Isa isa);

/// The dots sum a w of one output row (image n, row oh): out[ow][channel],
/// int32, for every column and output channel.
void conv_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
              std::int32_t* out, Isa isa);

/// A layer with one output pixel per image (a linear layer, or a conv2d as
/// large as its padded input): the dots of images [first, last) as one
/// row, out[image - first][channel], so that the kernels tile over images
/// as over a row's columns. Bit planes only; throws std::invalid_argument
/// for other layers.
void conv_images(const PackedActivations& x, const PackedWeights& w, std::int64_t first,
                 std::int64_t last, std::int32_t* out, Isa isa);

/// How dots become output codes: round(m[k] dot + c[k]) clamped to
/// [lo, hi], k the output channel (as requantize() below).
///
/// Where the output grid has at most kMaxThresholds + 1 codes (a 1- or
/// 2-bit layer's), `thresholds` may give the same codes by comparisons
/// alone, as FINN's streamlined networks do: code = lo + the number of
/// levels j whose thresholds[j * channels + k] the dot exceeds
/// (requant_thresholds()). The AVX-512 kernels then compare instead of
/// converting to double and back.
struct Requant {
  const double* m;
  const double* c;
  double lo, hi;
  const std::int32_t* thresholds = nullptr;  ///< [level][channel], or none
  std::int64_t channels = 0;                 ///< between a threshold's levels

  /// Thresholds per channel: hi - lo where they are set, else 0.
  int levels() const { return thresholds ? static_cast<int>(hi - lo) : 0; }
  /// The same for the channels from `first` on.
  Requant from(std::int64_t first) const {
    return {m + first, c + first, lo, hi, thresholds ? thresholds + first : nullptr, channels};
  }
};

inline constexpr int kMaxThresholds = 3;

/// Per level j in [0, hi - lo) and channel k, the greatest int32 dot d whose
/// code (requantize()'s) is below lo + j + 1: the codes are monotone in the
/// dot (m > 0), so a dot's code is lo plus the count of thresholds under
/// it. Exact for every dot above INT32_MIN, which no layer's dot reaches.
/// Empty where hi - lo is not in [1, kMaxThresholds] or an m is not positive
/// and finite.
std::vector<std::int32_t> requant_thresholds(const double* m, const double* c,
                                             std::int64_t channels, double lo, double hi);

/// conv_row's dots as output codes, out[ow][channel] (uint8). The AVX-512
/// and AVX2 kernels requantize in registers; the portable one through
/// requantize().
void conv_row_codes(const PackedActivations& x, const PackedWeights& w, std::int64_t n,
                    std::int64_t oh, const Requant& q, std::uint8_t* out, Isa isa);

/// conv_images' dots as output codes, out[image - first][channel] (uint8).
void conv_images_codes(const PackedActivations& x, const PackedWeights& w, std::int64_t first,
                       std::int64_t last, const Requant& q, std::uint8_t* out, Isa isa);

/// Output codes from `count` columns of dots, `channels` each:
/// out[i] = round(m[k] dots[i] + c[k]) clamped to [lo, hi], k the channel,
/// m dots + c fused (one rounding), then rounded half to even, as the
/// vector kernels do it in registers.
void requantize(const std::int32_t* dots, std::int64_t count, std::int64_t channels,
                const double* m, const double* c, double lo, double hi, std::uint8_t* out);

}  // namespace qlab::bits
