#include "archive_io.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace qlab {
namespace fs = std::filesystem;

void write_atomically(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      throw Error(fmt::format("{}: cannot write the file", path));
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(fmt::format("{}: cannot write the file: {}", path, ec.message()));
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
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a readable checkpoint (truncated or corrupt)", path));
  }
  c10::IValue raw;
  if (!archive.try_read("qlab_meta", raw) || !raw.isString())
    throw Error(fmt::format("{}: not a qlab checkpoint (no qlab header)", path));
  auto meta = nlohmann::json::parse(raw.toStringRef(), nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    throw Error(fmt::format("{}: the checkpoint's qlab header is corrupt", path));
  return meta;
}

}  // namespace qlab
