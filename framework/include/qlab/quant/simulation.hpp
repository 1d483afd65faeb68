#pragma once
// simulate() node by node, for a backend that runs some nodes of a
// quantized model on kernels of its own and simulates the others.
#include <qlab/quant/qmodel.hpp>

namespace qlab {

/// What simulate() does to each node's float output: fake-quantize it onto
/// its calibrated grid (static), round an average pooling back onto its
/// input's grid, or fake-quantize a quantized layer's input per batch
/// (dynamic). A value already on its grid passes unchanged. `model` must
/// outlive the hook.
GraphModuleImpl::NodeHook simulation_hook(const QuantizedModel& model);

}  // namespace qlab
