#pragma once
// Graph passes that quantizers share.
#include <qlab/graph.hpp>

namespace qlab {

/// Folds every batch norm into the conv2d before it, and merges a relu or
/// relu6 that follows a conv2d or linear into that node (PyTorch's
/// fuse_modules). A node is fused only into its sole consumer. The result is
/// in eval mode and computes what `trained` computes in eval mode.
GraphModule fuse(GraphModule trained);

}  // namespace qlab
