#pragma once
#include <cstdint>
#include <string>

namespace qlab {

/// The most a dataset file may hold once decompressed.
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{2} << 30;

/// The content of `path`, gunzipped if it is gzip (zlib reads plain files
/// unchanged), up to `limit` bytes. Throws qlab::Error naming the file when
/// it is missing, unreadable or truncated. When it holds more than `limit`
/// bytes: sets `*more` and returns the first `limit`, or, with no `more`,
/// throws. Memory never grows past `limit`, whatever a gzip bomb expands to.
std::string read_file_bytes(const std::string& path, std::uint64_t limit = kMaxFileBytes,
                            bool* more = nullptr);

}  // namespace qlab
