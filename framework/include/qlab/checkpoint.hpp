#pragma once
// Checkpoints: a module's parameters and buffers plus a JSON header that
// names the model and its graph signature, so a checkpoint is never loaded
// into another architecture. Writes are atomic (temporary file + rename).
#include <qlab/plugin/graph.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qlab {

/// The float checkpoint's layout (3: safetensors, qlab's metadata in
/// "__metadata__"; 2 was qlab's own tensor file). Part of the baseline
/// cache's key, so files of an older layout are simply not found.
constexpr int kCheckpointFormat = 3;

void save_checkpoint(const std::string& path, GraphModule& module, nlohmann::json meta);
/// Loads `path` into `module`; throws qlab::Error naming the file when it is
/// missing, unreadable, truncated or written for another graph. Returns the
/// stored header.
nlohmann::json load_checkpoint(const std::string& path, GraphModule& module);

/// Loads trained float weights from a state_dict under PyTorch's names
/// (`features.0.weight`), in a safetensors file or a torch.save file (whose
/// pickle is read, never run), strictly: missing keys, unexpected keys and
/// shape mismatches end in one qlab::Error that lists each; floats of
/// another width are converted, and the notes returned say which.
std::vector<std::string> load_float_weights(const std::string& path, GraphModule& module);
/// The same from the file's bytes, already read; `path` names it in errors.
std::vector<std::string> load_float_weights(const std::string& bytes, const std::string& path,
                                            GraphModule& module);

}  // namespace qlab
