#pragma once
// Where the fields and tables kernels write one output row of one group,
// and how they end it: dots, or codes through a Requant.
#include "bit_kernels.hpp"

#include <algorithm>

namespace qlab::bits {

struct RowOutput {
  std::int64_t group_out = 0, width = 0;
  std::int32_t alpha = 1, beta = 0;
  const Requant* requant = nullptr;  // set: codes out, else dots
  std::int32_t* dots = nullptr;      // output column 0, the group's channel 0
  std::uint8_t* codes = nullptr;
  std::int64_t out_column = 0, first_channel = 0;

  /// Channels of block b of kFieldBlock from its channel `from` on, at
  /// most kChannelBlock.
  std::int64_t lanes(std::int64_t b, std::int64_t from = 0) const {
    return std::max<std::int64_t>(0, std::min(kChannelBlock, group_out - b * kFieldBlock - from));
  }

  /// Output column ow's channel k (of the group): its dot, or its code.
  void put(std::int64_t ow, std::int64_t k, std::int32_t dot) const {
    if (requant)
      requantize(&dot, 1, 1, requant->m + first_channel + k, requant->c + first_channel + k,
                 requant->lo, requant->hi, codes + ow * out_column + k);
    else
      dots[ow * out_column + k] = dot;
  }
};

/// Group `group`'s row of the output (dots or codes, as `q` is set), its
/// first column.
inline RowOutput row_output(const ConvGeometry& g, const PackedWeights& w, std::int64_t group,
                            const Requant* q, std::int32_t* dots, std::uint8_t* codes) {
  RowOutput out;
  out.group_out = g.group_out();
  out.width = g.out_width();
  out.alpha = w.alpha;
  out.beta = w.beta;
  out.requant = q;
  out.first_channel = group * out.group_out;
  out.dots = dots ? dots + out.first_channel : nullptr;
  out.codes = codes ? codes + out.first_channel : nullptr;
  out.out_column = g.out_channels;
  return out;
}

}  // namespace qlab::bits
