#include "file_bytes.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace qlab {

std::string read_file_bytes(const std::string& path, std::uint64_t limit) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(fmt::format("{}: no such file", path));
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string out;
  char buf[1 << 16];
  while (true) {
    const int n = gzread(f.get(), buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      throw Error(fmt::format("{}: corrupt or truncated file ({})", path, msg));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > limit)
      throw Error(fmt::format("{}: larger than {} bytes once decompressed; refusing to read it",
                              path, limit));
    out.append(buf, static_cast<std::size_t>(n));
  }
  int code = 0;
  gzerror(f.get(), &code);
  if (code != Z_OK && code != Z_BUF_ERROR)
    throw Error(fmt::format("{}: corrupt or truncated file", path));
  return out;
}

}  // namespace qlab
