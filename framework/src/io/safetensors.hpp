#pragma once
// Named tensors in the safetensors format (huggingface/safetensors), the
// ecosystem's safe file for weights: the JSON header's length (8 bytes,
// little-endian), the header ({"name": {"dtype", "shape", "data_offsets"},
// "__metadata__": {string: string}}), then the raw little-endian bytes.
// qlab's float checkpoints are such files, its own metadata a JSON string
// under "__metadata__"."qlab", so `safetensors.torch.load_file` reads them.
// The reader checks every size and offset against the file before it makes
// a tensor; nothing in a file is run.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace qlab {

struct TensorFile {
  nlohmann::json meta;                          ///< qlab's metadata (null when the file has none)
  std::map<std::string, std::string> metadata;  ///< the file's "__metadata__", as it is
  std::map<std::string, torch::Tensor> tensors;
};

/// The file's bytes: each tensor as CPU, contiguous data in its own dtype,
/// in the order given; `meta` goes to "__metadata__"."qlab" unless null.
std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const nlohmann::json& meta);

/// Parses a safetensors file already in memory; `path` names it in errors.
/// Throws qlab::Error naming the file and what is wrong where (a byte
/// offset, or the tensor's name): a header longer than the file, one that
/// is not a JSON object, an unknown dtype, a shape that does not match the
/// byte count, bytes past the end, tensors whose bytes overlap.
TensorFile parse_safetensors(const std::string& bytes, const std::string& path);

/// Reads a safetensors file (parse_safetensors), or says it is missing.
TensorFile read_safetensors(const std::string& path);

}  // namespace qlab
