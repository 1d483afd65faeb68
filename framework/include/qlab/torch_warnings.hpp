#pragma once
// LibTorch's warnings that a qlab user cannot act on stay out of the output
// (torch_warnings.cpp): LibTorch 2.13's deprecation of the quantized dtypes
// (quint8, qint8) that the int8 backends' kernels take inside qlab. Every
// other warning reaches LibTorch's own handler. The filter is installed
// when libqlab loads, on the thread that loads it, which runs experiments.
#include <cstdint>

namespace qlab {

/// How many warnings the filter has kept out so far.
std::int64_t quieted_torch_warnings();

}  // namespace qlab
