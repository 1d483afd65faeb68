#pragma once
// int8 inference on an NVIDIA GPU through at::_int_mm: cuBLASLt's int8 x
// int8 -> int32 matrix product (LibTorch >= 2.1). Linear layers and
// ungrouped convolutions (as im2col, or directly for 1x1) run on it and are
// requantized on the device; every other node of the model runs as the
// fake-quant simulation does. The same code runs on the CPU, with an exact
// int32 product in _int_mm's place, which is how it is tested without a GPU.
#include <qlab/plugin/backend.hpp>
#include <qlab/quant/qmodel.hpp>

#include <memory>

namespace qlab::cuda {

/// Whether this LibTorch has at::_int_mm (2.1 and later).
bool has_int_mm();

/// a [M, K] x b [K, N], both int8, as int32: at::_int_mm for CUDA tensors
/// where LibTorch has it (padded to its shape rules: M > 16, K and N
/// multiples of 8), an exact int32 product otherwise.
torch::Tensor int_mm(const torch::Tensor& a, const torch::Tensor& b);

/// A static quantized model whose grids all embed in int8 (int8_blockers()
/// empty), on `device`. Mode int8 when every quantized layer runs on
/// int_mm; simulated, saying which layers are, when some cannot (grouped
/// convolutions). lowered() names each node's kernel.
std::unique_ptr<Executable> int_mm_executable(std::shared_ptr<const QuantizedModel> model,
                                              torch::Device device);

}  // namespace qlab::cuda
