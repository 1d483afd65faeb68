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

/// Node `node` of the model as its executable runs it (the engine's kernel,
/// or the backend's own), on the quantized tensor its input step would hand
/// it: for benchmarks that time one layer without the model's float input
/// and output around it. An image convolution that runs the pooling after
/// it (its name says so) returns the pooled map.
LayerKernel lowered_node(std::shared_ptr<const QuantizedModel> model, const EngineInfo& info,
                         const std::string& node);

}  // namespace qlab::int8
