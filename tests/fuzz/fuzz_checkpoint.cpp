// The safetensors reader behind both of its users, any bytes into a small
// graph: load_checkpoint (the baseline cache) and load_float_weights
// ([model] weights).
#include "fuzz_support.hpp"
#include "tiny_conv_graph.hpp"

#include <qlab/checkpoint.hpp>

#include <cstdlib>

// QLAB_FUZZ_WRITE_SEED=FILE writes a valid checkpoint of the graph, the
// seed in corpus/checkpoint/.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("QLAB_FUZZ_WRITE_SEED")) {
    qlab::GraphModule m(qlab::fuzz::tiny_conv_graph());
    qlab::save_checkpoint(out, m, {{"model", "fuzz"}});
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static qlab::GraphModule module(qlab::fuzz::tiny_conv_graph());
  const std::string& path = qlab::fuzz::scratch("checkpoint.safetensors");
  qlab::fuzz::write(path, data, size);
  qlab::fuzz::refuse_or_accept([&] { qlab::load_float_weights(path, module); });
  return qlab::fuzz::refuse_or_accept([&] { qlab::load_checkpoint(path, module); });
}
