// The torch.save reader in two modes. Bytes that start as a zip ("PK") are
// a whole file for load_float_weights, into a small graph. Any other bytes
// are a pickle alone for the restricted machine, its storages those of the
// seed fuzz_graph.pt, so that mutations reach the opcodes (inside a zip a
// mutated pickle mostly fails its CRC).
#include "fuzz_support.hpp"
#include "io/torch_pickle.hpp"
#include "tiny_conv_graph.hpp"

#include <qlab/checkpoint.hpp>

#include <map>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static qlab::GraphModule module(qlab::fuzz::tiny_conv_graph());
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
    const std::string& path = qlab::fuzz::scratch("weights.pt");
    qlab::fuzz::write(path, data, size);
    return qlab::fuzz::refuse_or_accept([&] { qlab::load_float_weights(path, module); });
  }
  // make_torch_save_seeds.py prints these sizes; unknown keys have none.
  static const std::map<std::string, std::string> storages{{"0", std::string(144, '\1')},
                                                           {"1", std::string(16, '\2')},
                                                           {"2", std::string(3072, '\3')},
                                                           {"3", std::string(12, '\4')}};
  const qlab::StorageBytes storage = [](const std::string& key) -> std::string_view {
    const auto it = storages.find(key);
    if (it == storages.end()) throw qlab::Error("no storage " + key);
    return it->second;
  };
  return qlab::fuzz::refuse_or_accept([&] {
    qlab::unpickle_state_dict(std::string_view(reinterpret_cast<const char*>(data), size), storage,
                              "fuzz");
  });
}
