#pragma once
// A QuantizedModel lowered onto LibTorch's quantized CPU kernels.
#include "aten_int8.hpp"

#include <memory>

namespace qlab::int8 {

/// Whether the int8 engines have a kernel for `op` (the rest run in float,
/// between a dequantize and a requantize).
bool has_int8_kernel(Op op);

/// The model on `info`'s engine; `reduce_range`: dynamic layers quantize
/// their inputs on 7 bits at run time.
std::unique_ptr<Executable> int8_executable(std::shared_ptr<const QuantizedModel> model,
                                            const EngineInfo& info, bool reduce_range);

}  // namespace qlab::int8
