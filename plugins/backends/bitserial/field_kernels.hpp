#pragma once
// The kernels on packed fields (Packing::fields, bit_kernels.hpp), for
// bit_kernels.cpp to dispatch to, and what the two files share.
#include "bit_kernels.hpp"

#include <vector>

namespace qlab::bits {

/// Room for a row's activation sums (at least `width`), kept by each
/// thread: the kernels take one row a call.
std::int32_t* sums_for(std::int64_t width);

/// 32-bit words of a layer's weights as fields (PackedWeights::fields).
std::int64_t weight_field_words(const ConvGeometry& g);

/// Sets the unsigned code `level` of output channel `oc` at place `at` of
/// kernel row `row` (tap * channels per group + channel) in `fields`.
void put_weight_field(const ConvGeometry& g, std::int64_t oc, std::int64_t row, std::int64_t at,
                      int level, std::vector<std::uint32_t>& fields);

/// 32-bit words of one image's group of packed fields.
std::int64_t field_image_words(const ConvGeometry& g);

/// Packs codes of images [first, last) as fields into out.fields, sized by
/// prepare_activations.
void pack_fields(const std::uint8_t* nhwc, std::uint8_t pad_code, std::int64_t first,
                 std::int64_t last, PackedActivations& out, Isa isa);

/// One output row (image n, row oh) on packed fields: with no `q`, its dots
/// to `dots` (as conv_row); with `q`, its codes to `codes` (as
/// conv_row_codes). `isa` avx512 runs the AVX2 kernel.
void field_row(const PackedActivations& x, const PackedWeights& w, std::int64_t n, std::int64_t oh,
               const Requant* q, std::int32_t* dots, std::uint8_t* codes, Isa isa);

}  // namespace qlab::bits
