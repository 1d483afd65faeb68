#pragma once
// 3x3 convolutions of low-bit codes by Winograd's minimal filtering,
// F(2x2, 3x3) (Lavin and Gray, CVPR 2016), exact in integers: each 2x2
// output tile takes 16 multiplies a channel pair where direct convolution
// takes 36, so 2.25x fewer multiply-adds, on the CPU's int8 multiply-adds
// (VNNI's `vpdpbusd`, AVX2's `vpmaddubsw`).
//
// With the transforms scaled to integers, U = (2G) g (2G)^T for each 3x3
// weight window g and V = B^T d B for each 4x4 input window d, the tile's
// dots are A^T (sum over channels of U . V) A / 4, the division exact. An
// int8 layer cannot take this path: its transformed weights outgrow 8 bits
// (9x its codes for the tile's middle taps). Codes of at most 2 bits stay
// small: weights in [-3, 3] give |U| <= 27, activations in [0, 3] give V in
// [-6, 12], stored biased by +6 as the unsigned operand [0, 18]; the bias's
// share, 6 sum U per output channel and position, starts each
// accumulator negated. On AVX2 the products' pair sums (at most 972) cannot
// saturate `vpmaddubsw`'s 16 bits as an int8 layer's can, so 32 of them add
// in 16 bits before widening (winograd_avx2.cpp).
//
// For stride 1, no groups; padding and any size (tiles past the edge are
// computed on padding codes and their extra outputs dropped).
#include "bit_kernels.hpp"

#include <cstdint>
#include <vector>

namespace qlab::bits {

/// Output channels of a block of the kernels (one zmm of int32).
inline constexpr std::int64_t kWinogradBlock = 16;

/// A layer's transformed weights U, int8, [position 16][block][step][lane
/// 16][group], a step being `group` input channels (4 for `vpdpbusd`, 2 for
/// AVX2's `vpmaddubsw`), zero past the last channel.
struct WinogradWeights {
  ConvGeometry geometry;
  Isa isa = Isa::portable;  ///< the kernel they are laid out for
  int group = 4;
  std::int64_t steps = 0, blocks = 0;
  std::vector<std::int8_t> u;
  /// [position][block * 16 + lane]: -6 sum over channels of U, where each
  /// accumulator starts.
  std::vector<std::int32_t> start;

  /// Where U of position p, output channel k and input channel c lies.
  std::size_t at(int p, std::int64_t k, std::int64_t c) const {
    return static_cast<std::size_t>(
        (((p * blocks + k / kWinogradBlock) * steps + c / group) * kWinogradBlock +
         k % kWinogradBlock) *
            group +
        c % group);
  }
};

/// Whether the layer's shape suits F(2x2, 3x3): a 3x3 kernel, stride 1, one
/// group.
bool winograd_suits(const ConvGeometry& g);

/// Whether this CPU has VNNI (with AVX-512 BW), which the avx512 kernel
/// needs; Isa::avx512 alone does not promise it.
bool cpu_has_vnni();

/// Transforms int8 weight codes in (out, kernel row, kernel column, in)
/// order for the kernel of `isa`: avx512 runs on VNNI, avx2 on AVX2's
/// byte multiply-adds, portable in plain integers. Throws
/// std::invalid_argument when the shape does not suit or a code lies
/// outside [-3, 3].
WinogradWeights winograd_weights(const ConvGeometry& g, const std::int8_t* codes, Isa isa);

/// How many items of work a layer of g's shape splits into: each image's
/// output tiles in blocks of 24, so that a batch smaller than the threads
/// still spreads over them.
std::int64_t winograd_items(const ConvGeometry& g);

/// The dots (sum a w) of items [first, last) of g's NHWC uint8 codes in
/// [0, 3] (padding: `pad_code`, also in [0, 3]) to `dots`
/// ([image][oh][ow][channel] int32, the whole batch's); with `q`, the
/// output codes instead, to `codes` (uint8, the same layout). On the kernel
/// the weights were laid out for; throws std::invalid_argument where this
/// CPU lacks it.
void winograd_conv(const ConvGeometry& g, const std::uint8_t* nhwc, std::uint8_t pad_code,
                   const WinogradWeights& w, std::int64_t first, std::int64_t last,
                   const Requant* q, std::int32_t* dots, std::uint8_t* codes);

}  // namespace qlab::bits
