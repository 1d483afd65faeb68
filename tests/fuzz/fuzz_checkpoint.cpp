// The safetensors reader behind both of its users, any bytes into a small
// graph: load_checkpoint (the baseline cache) and load_float_weights
// ([model] weights).
#include "fuzz_support.hpp"

#include <qlab/checkpoint.hpp>
#include <qlab/plugin/graph.hpp>

#include <cstdlib>

namespace {

qlab::Graph graph() {
  qlab::Graph g("Fuzz");
  auto x = g.input("input", {1, 8, 8});
  x = g.conv2d("features.0", x, 1, 4, 3, 1, 1);
  x = g.relu("features.1", x);
  x = g.flatten("flatten", x);
  x = g.linear("classifier", x, 4 * 8 * 8, 3);
  g.set_outputs({x});
  return g;
}

}  // namespace

// QLAB_FUZZ_WRITE_SEED=FILE writes a valid checkpoint of the graph, the
// seed in corpus/checkpoint/.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("QLAB_FUZZ_WRITE_SEED")) {
    qlab::GraphModule m(graph());
    qlab::save_checkpoint(out, m, {{"model", "fuzz"}});
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static qlab::GraphModule module(graph());
  const std::string& path = qlab::fuzz::scratch("checkpoint.safetensors");
  qlab::fuzz::write(path, data, size);
  qlab::fuzz::refuse_or_accept([&] { qlab::load_float_weights(path, module); });
  return qlab::fuzz::refuse_or_accept([&] { qlab::load_checkpoint(path, module); });
}
