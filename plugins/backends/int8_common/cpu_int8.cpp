#include "cpu_int8.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <dlfcn.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define QLAB_X86 1
#endif

namespace qlab::int8 {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool forced(CpuPath& path) {
  const char* v = std::getenv("QLAB_INT8_PATH");
  if (!v || !*v) return false;
  const std::string s = lower(v);
  if (s == "vnni")
    path = CpuPath::vnni;
  else if (s == "avx2")
    path = CpuPath::pair_sums_16;
  else
    throw Error(fmt::format("QLAB_INT8_PATH: '{}' is not one of vnni, avx2", v));
  return true;
}

#ifdef QLAB_X86
// The registers the OS saves on a context switch (XCR0); a feature whose
// registers it does not save cannot be used, whatever cpuid says.
std::uint64_t saved_state() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

struct X86Features {
  bool avx512_vnni = false;
  bool avx_vnni = false;
};

X86Features x86_features() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return f;
  const std::uint64_t xcr0 = saved_state();
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
    f.avx512_vnni = zmm && (b & (1u << 16)) && (c & (1u << 11));
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx_vnni = ymm && (a & (1u << 4));
  return f;
}
#endif

// oneDNN's ONEDNN_MAX_CPU_ISA (DNNL_MAX_CPU_ISA before v2.x) caps what it
// dispatches to; these caps stop below VNNI.
bool capped_below_vnni() {
  for (const char* name : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    const std::string s = lower(v);
    return s == "sse41" || s == "avx" || s == "avx2" || s == "avx512_mic" ||
           s == "avx512_mic_4ops" || s == "avx512_core";
  }
  return false;
}

}  // namespace

const char* to_string(CpuPath path) {
  switch (path) {
    case CpuPath::vnni:
      return "VNNI";
    case CpuPath::pair_sums_16:
      return "AVX2, 16-bit pair sums";
    case CpuPath::not_x86:
      return "not x86";
  }
  return "?";
}

CpuPath cpu_path() {
  CpuPath path = CpuPath::not_x86;
  if (forced(path)) return path;
#ifdef QLAB_X86
  static const X86Features f = x86_features();
  path = f.avx512_vnni || f.avx_vnni ? CpuPath::vnni : CpuPath::pair_sums_16;
#endif
  return path;
}

CpuPath onednn_path() {
  CpuPath path = CpuPath::not_x86;
  if (forced(path)) return path;
  path = cpu_path();
  if (path == CpuPath::not_x86) return path;
  // Debian's LibTorch links oneDNN as a shared library, which answers
  // exactly; an official LibTorch hides its static copy.
  using EffectiveIsa = int (*)();
  if (auto isa =
          reinterpret_cast<EffectiveIsa>(dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa"))) {
    constexpr int kAvx512Vnni = 0x40, kAvxVnni = 0x400;  // bits of dnnl_cpu_isa_t
    return isa() & (kAvx512Vnni | kAvxVnni) ? CpuPath::vnni : CpuPath::pair_sums_16;
  }
  return capped_below_vnni() ? CpuPath::pair_sums_16 : path;
}

RangeChoice parse_range_choice(const std::string& value) {
  if (value == "on") return RangeChoice::on;
  if (value == "off") return RangeChoice::off;
  return RangeChoice::automatic;  // the schema admits nothing else
}

EngineConstraints engine_constraints(at::QEngine engine, CpuPath path, RangeChoice choice) {
  EngineConstraints c;
  c.per_channel_weights = true;
  if (engine == at::QEngine::QNNPACK) {
    c.int8_path = "QNNPACK, 16-bit operands summed in 32 bits";
    c.reduce_range = choice == RangeChoice::on;
    return c;
  }
  c.int8_path = to_string(path);
  const bool saturates = path == CpuPath::pair_sums_16;
  const bool automatic = engine == at::QEngine::FBGEMM || engine == at::QEngine::X86 || saturates;
  c.reduce_range = choice == RangeChoice::automatic ? automatic : choice == RangeChoice::on;
  if (saturates && !c.reduce_range)
    c.warning = fmt::format(
        "[backend] reduce_range = \"off\" on a CPU without VNNI ({}): its int8 kernels add pairs "
        "of "
        "u8 x s8 products in saturating 16-bit sums, so 8-bit activations can clip silently "
        "(a 32->64 3x3 conv: normalised error 0.094 against 0.018 with 7-bit activations)",
        c.int8_path);
  return c;
}

}  // namespace qlab::int8
