#pragma once
// How an int8 engine multiplies u8 x s8 on this CPU, and what that demands of
// 8-bit activations.
//
// x86 int8 kernels without VNNI multiply with vpmaddubsw, which adds each
// pair of u8 x s8 products into a saturating 16-bit lane: 2 x 255 x 127 >
// 32767, so full-range activations can clip silently. With 7-bit activations
// (reduce_range) a pair is at most 2 x 127 x 128 = 32512 and never clips.
// VNNI's vpdpbusd sums the products in 32 bits and is exact at 8 bits.
#include <qlab/plugin/quantizer.hpp>

#include <ATen/Context.h>

#include <string>

namespace qlab::int8 {

enum class CpuPath {
  vnni,          ///< AVX-512 VNNI or AVX-VNNI: products summed in 32 bits
  pair_sums_16,  ///< AVX2 (or AVX-512 without VNNI): pairs summed in 16 bits, saturating
  not_x86,       ///< no x86 int8 kernels (an Arm machine)
};
const char* to_string(CpuPath path);

/// What the CPU offers, from cpuid and the registers the OS saves.
/// QLAB_INT8_PATH=vnni|avx2 forces the answer (tests, or a hypervisor that
/// hides cpuid flags); any other value is an error naming the variable.
CpuPath cpu_path();

/// What oneDNN will run here: its effective ISA when the library answers
/// (this honours ONEDNN_MAX_CPU_ISA), else cpu_path() capped by that
/// variable. QLAB_INT8_PATH forces it too.
CpuPath onednn_path();

/// `[backend] reduce_range`: "auto" follows the CPU; "on" and "off" force.
enum class RangeChoice { automatic, on, off };
RangeChoice parse_range_choice(const std::string& value);

/// The constraints an engine's kernels impose on this CPU path, with the
/// path named and a warning where the user's choice risks saturation.
/// QNNPACK widens codes to 16 bits and sums in 32: exact on any CPU.
/// FBGEMM and the x86 engine (FBGEMM's kernels for most ops) keep 7-bit
/// activations in "auto" everywhere, as PyTorch's fbgemm and x86 qconfigs do:
/// qlab has not run them on a VNNI CPU to show otherwise.
EngineConstraints engine_constraints(at::QEngine engine, CpuPath path, RangeChoice choice);

}  // namespace qlab::int8
