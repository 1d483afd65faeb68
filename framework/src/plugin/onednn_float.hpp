#pragma once
// fp32 inference on oneDNN primitives, the library LibTorch's own CPU
// convolutions call, but without LibTorch's per-call overhead: weights are
// reordered once into the layout each primitive prefers, activations stay in
// oneDNN's blocked layouts between layers, batch norm is folded and
// ReLU/ReLU6 run as post-ops of the conv or linear before them.
#include <qlab/plugin/backend.hpp>

#include <memory>
#include <string>

namespace qlab {

/// `module` lowered onto oneDNN, in eval mode; null, with the reason in
/// `why`, when qlab was built without oneDNN or the graph has an op this
/// executable does not lower (batch norm that follows no conv, VAE sampling).
std::unique_ptr<Executable> onednn_float_executable(const GraphModule& module, std::string& why);

}  // namespace qlab
