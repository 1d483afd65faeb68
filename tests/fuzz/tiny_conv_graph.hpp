#pragma once
// The small graph the weight readers' fuzzers load into; its names are
// those of make_torch_save_seeds.py's PyTorch module, so that the seeds
// load whole.
#include <qlab/plugin/graph.hpp>

namespace qlab::fuzz {

inline Graph tiny_conv_graph() {
  Graph g("Fuzz");
  auto x = g.input("input", {1, 8, 8});
  x = g.conv2d("features.0", x, 1, 4, 3, 1, 1);
  x = g.relu("features.1", x);
  x = g.flatten("flatten", x);
  x = g.linear("classifier", x, 4 * 8 * 8, 3);
  g.set_outputs({x});
  return g;
}

}  // namespace qlab::fuzz
