#pragma once
// Graph passes that quantizers share.
#include <qlab/plugin/graph.hpp>

namespace qlab {

/// What qlab::fuse merges into a conv2d or linear node: the batch norm
/// folded into it and the relu/relu6 node merged into it ("" when none).
struct FusionGroup {
  std::string batch_norm;
  std::string activation;
};

/// The node that alone reads `name`, if it has exactly one reader and
/// `name` is no graph output; else null.
const Node* sole_consumer(const Graph& graph, const std::string& name);

/// The fusion group of every conv2d/linear node of `graph`, by node name.
std::map<std::string, FusionGroup> fusion_groups(const Graph& graph);

/// Folds every batch norm into the conv2d before it, and merges a relu or
/// relu6 that follows a conv2d or linear into that node (PyTorch's
/// fuse_modules). A node is fused only into its sole consumer. The result is
/// in eval mode and computes what `trained` computes in eval mode.
GraphModule fuse(GraphModule trained);

}  // namespace qlab
