#pragma once
#include <string>

namespace qlab {

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader sees the old file or the new one, never half of one, and a failed
/// write (a full disk, a read-only folder) leaves the old file as it was.
/// Creates the parent folder. Throws qlab::Error naming the file.
void write_atomically(const std::string& path, const std::string& bytes);

}  // namespace qlab
