#include "data/file_bytes.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace qlab {

std::string read_file_bytes(const std::string& path, std::uint64_t limit, bool* more) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(fmt::format("{}: no such file", path));
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string out;
  char buf[1 << 16];
  // One byte past the limit tells "exactly limit" from "more".
  while (out.size() <= limit) {
    const auto want =
        static_cast<unsigned>(std::min<std::uint64_t>(sizeof buf, limit + 1 - out.size()));
    const int n = gzread(f.get(), buf, want);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      throw Error(
          fmt::format("{}: corrupt or truncated file at byte {} ({})", path, out.size(), msg));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (out.size() > limit) {
    if (!more)
      throw Error(fmt::format("{}: larger than {} bytes once decompressed; refusing to read it",
                              path, limit));
    *more = true;
    out.resize(limit);
    return out;
  }
  if (more) *more = false;
  // Z_BUF_ERROR here is a gzip stream that ends before its end marker.
  int code = 0;
  const char* msg = gzerror(f.get(), &code);
  if (code != Z_OK)
    throw Error(
        fmt::format("{}: corrupt or truncated file at byte {} ({})", path, out.size(), msg));
  return out;
}

}  // namespace qlab
