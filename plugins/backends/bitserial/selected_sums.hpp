#pragma once
// A linear layer whose input codes have one bit and whose weights are wider
// (the last layer of a binary network keeps 8-bit weights, as the papers
// do): each dot product sum a w is the sum of the weights that the input's
// set bits select, so it needs neither multiplies nor weight planes. Each
// input adds its row of the transposed weights under a mask of its bit:
// branch-free, one vector add per 8 (AVX2) outputs, where bit planes would
// take a popcount per weight plane, eight at 8 bits.
#include "bit_kernels.hpp"

#include <cstdint>
#include <vector>

namespace qlab::bits {

/// A linear layer's int8 weight codes [out, in], transposed to rows of
/// int32 [in][stride], stride the outputs rounded up to 16 (zeros past them).
struct SelectedWeights {
  std::int64_t in = 0, out = 0, stride = 0;
  std::vector<std::int32_t> rows;
};
SelectedWeights select_weights(const std::int8_t* codes, std::int64_t out, std::int64_t in);

/// The dots of `count` inputs of w.in codes each (0 or 1; higher bits are
/// ignored): out[i][k] for the w.out outputs k. `isa` avx2 or avx512 runs
/// the AVX2 loop.
void selected_dots(const SelectedWeights& w, const std::uint8_t* codes, std::int64_t count,
                   std::int32_t* out, Isa isa);

}  // namespace qlab::bits
