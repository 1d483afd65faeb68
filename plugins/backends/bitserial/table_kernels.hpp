#pragma once
// The kernels on product tables (Packing::tables, bit_kernels.hpp), for
// bit_kernels.cpp to dispatch to.
//
// Two activation codes a0, a1 of at most 2 bits take 16 sums of products
// with two weight codes: T[c0 + 4 c1] = a0 c0 + a1 c1, at most 18, a byte
// each. Activations are packed four codes to a byte, which picks the tables
// of its two pairs from 8 KB of constants; a weight tap stores, per output
// channel, the byte c0 + 4 c1 of each pair. One vpshufb of two pairs'
// tables by those bytes looks up 16 channels' sums for both: 64 products
// per shuffle and byte add on AVX2, where fields take two multiply-adds and
// two adds. T-MAC (Wei et al., EuroSys 2025) looks up int8 activations'
// sums by weight bits; here whole 2-bit weight codes look up 2-bit
// activations' products, so that an entry fits a byte. Byte sums widen to
// 16 bits before they can pass 255.
#include "bit_kernels.hpp"

#include <vector>

namespace qlab::bits {

/// Whether a layer's dots fit the kernels' 16-bit sums: 9 (the greatest
/// product) times the codes of a receptive field is below 2^16.
bool tables_fit(const ConvGeometry& g);

/// Whether the AVX2 kernel keeps a kernel row's indices in registers and
/// loads each pixel's tables once for several output columns: stride 1,
/// a 5x5 kernel over at most 8 channels a group or a 3x3 one over at most
/// 12. Other layers take a lookup's tables from memory, and run slower than
/// on fields where a group is wide (docs/measurements.md).
bool tables_blocked(const ConvGeometry& g);

/// Bytes of one image's group of tables (PackedActivations::tables).
std::int64_t table_image_bytes(const ConvGeometry& g);

/// Where each lookup of an output pixel finds its tables, from the first
/// (PackedActivations::table_offsets).
std::vector<std::int32_t> table_offsets(const ConvGeometry& g);

/// Bytes of a layer's weight indices (PackedWeights::table_indices).
std::int64_t table_index_bytes(const ConvGeometry& g);

/// Sets the unsigned code `level` of output channel `oc` at input channel
/// `ch` (of its group) of tap `tap` (kernel row * kernel + column) in
/// `indices`.
void put_table_index(const ConvGeometry& g, std::int64_t oc, std::int64_t tap, std::int64_t ch,
                     int level, std::vector<std::uint8_t>& indices);

/// Packs codes of images [first, last) as tables into out.tables, and the
/// code sums of their receptive fields into out.window_sums; sized by
/// prepare_activations.
void pack_tables(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                 std::int64_t last, PackedActivations& out);

/// One output row (image n, row oh) on tables: with no `q`, its dots to
/// `dots` (as conv_row); with `q`, its codes to `codes` (as
/// conv_row_codes). `isa` avx512 runs the AVX2 kernel.
void table_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
               const Requant* q, std::int32_t* dots, std::uint8_t* codes, Isa isa);

}  // namespace qlab::bits
