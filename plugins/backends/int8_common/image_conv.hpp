#pragma once
// An int8 convolution for layers over few input channels: a network's first
// layer, on a grayscale or RGB image. The engines' kernels put input
// channels in their vector lanes, so with one channel they idle: oneDNN
// 2.6 takes 0.24 ms for LeNet's 1->6 5x5 conv at batch 64, three times its
// next conv, which has six times the multiplies. This kernel puts output
// columns in the lanes instead. The input is repacked per image so that
// each 32-bit element holds the codes of R consecutive rows at one column;
// one load then serves every output channel, and one multiply-add sums R
// taps of a kernel column per lane:
//
//   AVX-512 VNNI: R = 4 rows of uint8, vpdpbusd (u8 x s8, exact in int32),
//                 16 columns per register;
//   AVX2:         R = 2 rows of uint16, vpmaddwd (exact; no 16-bit pair
//                 sums to saturate, unlike int8 on AVX2's vpmaddubsw),
//                 8 columns per register;
//   AVX2, byte pairs: where no two weights summed in one 16-bit lane pass
//                 128 in magnitude together (weights of 7 bits or fewer),
//                 R = 4 rows of uint8 by vpmaddubsw, exact, the 16-bit
//                 sums of as many taps as cannot wrap added before they
//                 are widened: LeNet's first layer at 4-bit weights 1.11x
//                 to 1.27x faster than on 16-bit pairs (Zen 5 capped at
//                 AVX2, batch 64);
//   portable:     plain loops.
//
// AVX-512 fills a register with (column, channel) pairs in output order, a
// permute per register and tap spreading the columns, so that the codes
// leave in one store. AVX2 keeps one register per output channel and 8
// columns in its lanes, no permutes, and transposes the codes as it stores
// them: on AVX2 the permutes cost more than the transposes (LeNet's first
// layer, a thread's 32 images: 118-122 -> 98-102 us on Zen 5 capped at
// AVX2), while on AVX-512 the two measured the same.
//
// A row's last columns fill part of a register. AVX2 puts the last 4 or
// fewer of two rows in one register, 4 lanes each; AVX-512 computes only
// the registers the last chunk's bytes fill. For LeNet's 28 columns, in one
// process alternating with the unshared tails: AVX2 145 -> 138 us, AVX-512
// 79 -> 70 us, for 64 images on 2 threads (Zen 5).
//
// The dots are exact integers, bias codes and the input's zero point
// folded in; each becomes a code as round(m dot + z_out) in float, clamped
// to the output grid, as the engines requantize.
//
// A 2x2 average pooling after the layer may run in the kernel (LeNet's):
// on AVX2, up to 8 channels, on the codes still in registers, the full map
// never stored; else on each image's map while it is in L1.
#include "aten_int8.hpp"

#include <optional>

namespace qlab::int8 {

enum class ImageConvIsa { portable, avx2, avx512_vnni };
const char* to_string(ImageConvIsa isa);
/// Whether this CPU runs `isa`.
bool cpu_has(ImageConvIsa isa);

/// The layer on the image convolution, if it takes it: a static conv2d
/// with at most 4 input channels, no groups, stride 1 and a square kernel
/// of at most 11. `isa`: the instructions to use; by default AVX-512 VNNI
/// where oneDNN's int8 path is VNNI (onednn_path(): ONEDNN_MAX_CPU_ISA and
/// QLAB_INT8_PATH cap both alike), else AVX2 if the CPU has it.
/// `average_2x2`: the kernel also runs the 2x2 average pooling at stride 2
/// that follows the layer, codes as avg_pool_codes gives them, on each
/// image's map while it is in L1 (at most 16 output channels).
std::optional<LayerKernel> image_conv_for(const LayerOffer& o,
                                          std::optional<ImageConvIsa> isa = std::nullopt,
                                          bool average_2x2 = false);

}  // namespace qlab::int8
