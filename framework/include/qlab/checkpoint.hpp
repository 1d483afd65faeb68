#pragma once
// Checkpoints: a module's parameters and buffers plus a JSON header that
// names the model and its graph signature, so a checkpoint is never loaded
// into another architecture. Writes are atomic (temporary file + rename).
#include <qlab/plugin/graph.hpp>

#include <nlohmann/json.hpp>
#include <string>

namespace qlab {

/// The float checkpoint's layout (2: qlab's tensor file). Part of the
/// baseline cache's key, so files of an older layout are simply not found.
constexpr int kCheckpointFormat = 2;

void save_checkpoint(const std::string& path, GraphModule& module, nlohmann::json meta);
/// Loads `path` into `module`; throws qlab::Error naming the file when it is
/// missing, unreadable, truncated or written for another graph. Returns the
/// stored header.
nlohmann::json load_checkpoint(const std::string& path, GraphModule& module);

}  // namespace qlab
