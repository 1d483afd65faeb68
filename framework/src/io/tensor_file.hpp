#pragma once
// qlab's own file of named tensors, for float checkpoints: "QLABTNS1", the
// JSON header's length (8 bytes, little-endian), the header, then the raw
// tensor bytes. It is parsed by qlab alone, every size and offset checked
// against the file, before any tensor is made: LibTorch's archive reader
// runs TorchScript's importer on what it reads, and a corrupt archive can
// crash it (found by fuzz_checkpoint), so a cached file never goes there.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace qlab {

struct TensorFile {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> tensors;
};

/// The file's bytes: each tensor as CPU, contiguous data in its own dtype.
std::string tensor_file_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const nlohmann::json& meta);

/// Reads a tensor file; throws qlab::Error naming the file and what is
/// wrong where (a byte offset, or the tensor's name).
TensorFile read_tensor_file(const std::string& path);

}  // namespace qlab
