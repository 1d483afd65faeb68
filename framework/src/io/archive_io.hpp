#pragma once
// Reading and writing qlab's files: checkpoints are LibTorch archives with a
// JSON header under "qlab_meta"; every file is written atomically.
#include <qlab/atomic_write.hpp>

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

namespace qlab {

/// The archive's bytes with `meta` stored as its qlab header.
std::string archive_bytes(torch::serialize::OutputArchive& archive, const nlohmann::json& meta);

/// Opens a qlab archive and returns its header; throws qlab::Error naming
/// the file when it is missing, truncated, corrupt or has no qlab header.
nlohmann::json open_archive(const std::string& path, torch::serialize::InputArchive& archive);

}  // namespace qlab
