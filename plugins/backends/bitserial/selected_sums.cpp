// Selected sums (selected_sums.hpp). One loop body, compiled twice: for
// AVX2 and for any x86-64 (the portable kernel).
#include "selected_sums.hpp"

#include "avx2_store.hpp"

#include <cstring>

namespace qlab::bits {
namespace {

// One input's dots over all w.stride outputs (the padding sums zeros), 16
// outputs at a time: a fixed run the compiler keeps in registers across the
// inputs, where a run of `stride` went through memory at every input.
__attribute__((always_inline)) inline void dots_of(const SelectedWeights& w,
                                                   const std::uint8_t* __restrict codes,
                                                   std::int32_t* __restrict acc) {
  const std::int64_t stride = w.stride;
  for (std::int64_t k0 = 0; k0 < stride; k0 += 16) {
    std::int32_t sum[16] = {};
    const std::int32_t* __restrict row = w.rows.data() + k0;
    for (std::int64_t i = 0; i < w.in; ++i, row += stride) {
      const std::int32_t mask = -static_cast<std::int32_t>(codes[i] & 1);
      for (int k = 0; k < 16; ++k) sum[k] += row[k] & mask;
    }
    for (int k = 0; k < 16; ++k) acc[k0 + k] = sum[k];
  }
}

void dots_portable(const SelectedWeights& w, const std::uint8_t* codes, std::int32_t* acc) {
  dots_of(w, codes, acc);
}

#if defined(__x86_64__)
QLAB_AVX2 void dots_avx2(const SelectedWeights& w, const std::uint8_t* codes, std::int32_t* acc) {
  dots_of(w, codes, acc);
}
#endif

}  // namespace

SelectedWeights select_weights(const std::int8_t* codes, std::int64_t out, std::int64_t in) {
  SelectedWeights w;
  w.in = in;
  w.out = out;
  w.stride = (out + 15) / 16 * 16;
  w.rows.assign(static_cast<std::size_t>(in * w.stride), 0);
  for (std::int64_t k = 0; k < out; ++k)
    for (std::int64_t i = 0; i < in; ++i)
      w.rows[static_cast<std::size_t>(i * w.stride + k)] = codes[k * in + i];
  return w;
}

void selected_dots(const SelectedWeights& w, const std::uint8_t* codes, std::int64_t count,
                   std::int32_t* out, Isa isa) {
  std::vector<std::int32_t> acc(static_cast<std::size_t>(w.stride));
  for (std::int64_t i = 0; i < count; ++i, codes += w.in, out += w.out) {
#if defined(__x86_64__)
    if (isa != Isa::portable)
      dots_avx2(w, codes, acc.data());
    else
#endif
      dots_portable(w, codes, acc.data());
    std::memcpy(out, acc.data(), static_cast<std::size_t>(w.out) * sizeof(std::int32_t));
  }
}

}  // namespace qlab::bits
