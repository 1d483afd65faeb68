#pragma once
#include <cstdint>
#include <string>

namespace qlab {

/// The whole content of `path`, gunzipped if it is gzip (zlib reads plain
/// files unchanged). Throws qlab::Error naming the file when it is missing,
/// unreadable, truncated, or larger than `limit` bytes once decompressed.
std::string read_file_bytes(const std::string& path, std::uint64_t limit = std::uint64_t{2} << 30);

}  // namespace qlab
