#include "io/archive_io.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace qlab {
namespace fs = std::filesystem;

void write_atomically(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  // The temporary file is this process's own, so two writers of one file
  // never write into each other's half.
  const std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot write the file: {}", path, std::strerror(errno)));
  const auto fail = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(fmt::format("{}: cannot write the file: {}", path, std::strerror(err)));
  };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(errno);
    done += static_cast<std::size_t>(n);
  }
  // On disk before the rename: a crash leaves the old file or the new one.
  if (::fsync(fd) != 0) fail(errno);
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(fmt::format("{}: cannot write the file: {}", path, std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("{}: cannot write the file: {}", path, std::strerror(err)));
  }
}

std::string archive_bytes(torch::serialize::OutputArchive& archive, const nlohmann::json& meta) {
  archive.write("qlab_meta", c10::IValue(meta.dump()));
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

nlohmann::json open_archive(const std::string& path, torch::serialize::InputArchive& archive) {
  if (!fs::is_regular_file(path)) throw Error(fmt::format("{}: no such checkpoint", path));
  // LibTorch's reader throws c10::Error for a bad zip, but plain
  // std::runtime_error from its TorchScript parser for bad code inside one.
  c10::IValue raw;
  bool has_meta = false;
  try {
    archive.load_from(path);
    has_meta = archive.try_read("qlab_meta", raw) && raw.isString();
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: not a readable checkpoint (truncated or corrupt)", path));
  }
  if (!has_meta) throw Error(fmt::format("{}: not a qlab checkpoint (no qlab header)", path));
  auto meta = nlohmann::json::parse(raw.toStringRef(), nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    throw Error(fmt::format("{}: the checkpoint's qlab header is corrupt", path));
  return meta;
}

}  // namespace qlab
