#pragma once
// What the Winograd kernels of each instruction set (winograd_vnni.cpp,
// winograd_avx2.cpp) share with the loop that drives them
// (winograd_kernels.cpp): the constants of F(2x2, 3x3) on codes, and each
// set's three steps.
#include "winograd_kernels.hpp"

#include <array>
#include <cstdint>
#include <utility>

namespace qlab::bits::winograd {

inline constexpr int kPositions = 16;         // of a 4x4 transformed tile
inline constexpr int kMaxCode = 3;            // of weights (in magnitude) and of activations
inline constexpr int kOffset = 2 * kMaxCode;  // V >= -6: V + 6 is the unsigned operand

inline std::int64_t tiles_down(const ConvGeometry& g) { return (g.out_height() + 1) / 2; }
inline std::int64_t tiles_across(const ConvGeometry& g) { return (g.out_width() + 1) / 2; }

/// M for `rows` tiles and `blocks` blocks of 16 output channels at one
/// position: from V + 6 ([tile][v_tile bytes]) and U (blocks u_block bytes
/// apart, WinogradWeights' layout from the position's block), starting at
/// `start`, to m ([tile][m_tile int32]).
using Multiply = void (*)(const std::uint8_t* v, std::int64_t v_tile, const std::int8_t* u,
                          std::int64_t u_block, std::int64_t steps, const std::int32_t* start,
                          std::int32_t* m, std::int64_t m_tile);

/// The table of a family's multiplies, F::get<R, NB>() for R in [1, Rows]
/// and NB in [1, Blocks]: the register tile is fixed when compiling, so a
/// block of tiles' last rows take a smaller one.
template <typename F, int R, int... NB>
constexpr std::array<Multiply, sizeof...(NB)> multiply_row(std::integer_sequence<int, NB...>) {
  return {F::template get<R, NB + 1>()...};
}
template <typename F, int Blocks, int... R>
constexpr std::array<std::array<Multiply, Blocks>, sizeof...(R)> multiply_table(
    std::integer_sequence<int, R...>) {
  return {multiply_row<F, R + 1>(std::make_integer_sequence<int, Blocks>())...};
}
template <typename F, int Rows, int Blocks>
Multiply multiply_for(int rows, int blocks) {
  static constexpr auto kTable = multiply_table<F, Blocks>(std::make_integer_sequence<int, Rows>());
  return kTable[static_cast<std::size_t>(rows - 1)][static_cast<std::size_t>(blocks - 1)];
}

/// One instruction set's kernels.
struct Kernels {
  int rows, blocks;  ///< the multiply's register tile, at most
  /// V + 6 of the tile at (ty, tx) of one image's NHWC codes: its 16
  /// positions `position` bytes apart, zero-padded channels to a multiple
  /// of 64.
  void (*transform)(const ConvGeometry& g, const std::uint8_t* image, std::uint8_t pad,
                    std::int64_t ty, std::int64_t tx, std::uint8_t* v, std::int64_t position);
  /// The multiply of rows r <= `rows`, blocks nb <= `blocks`.
  Multiply (*multiply)(int r, int nb);
  /// Block b's 16 output channels of `count` tiles from tile `first` of an
  /// image, from M ([tile][position][stride int32], m at the block's
  /// channel 0): A^T M A / 4 as dots (no q) or codes.
  void (*finish)(const ConvGeometry& g, const std::int32_t* m, std::int64_t m_tile,
                 std::int64_t stride, std::int64_t b, std::int64_t first, std::int64_t count,
                 const Requant* q, std::int32_t* dots, std::uint8_t* codes);
};

const Kernels& vnni_kernels();
const Kernels& avx2_kernels();

}  // namespace qlab::bits::winograd
