#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace qlab {
namespace fs = std::filesystem;

void save_checkpoint(const std::string& path, GraphModule& module, nlohmann::json meta) {
  meta["graph_signature"] = module->graph().signature();
  meta["format"] = 1;
  torch::serialize::OutputArchive archive;
  module->save(archive);
  archive.write("qlab_meta", c10::IValue(meta.dump()));
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(fmt::format("{}: cannot write checkpoint: {}", path, e.what_without_backtrace()));
  }
  fs::rename(tmp, target);  // atomic: readers see the old file or the new one
}

nlohmann::json load_checkpoint(const std::string& path, GraphModule& module) {
  if (!fs::is_regular_file(path)) throw Error(fmt::format("{}: no such checkpoint", path));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a readable checkpoint (truncated or corrupt)", path));
  }
  c10::IValue raw;
  if (!archive.try_read("qlab_meta", raw) || !raw.isString())
    throw Error(fmt::format("{}: not a qlab checkpoint (no qlab header)", path));
  nlohmann::json meta = nlohmann::json::parse(raw.toStringRef(), nullptr, false);
  if (meta.is_discarded() || !meta.contains("graph_signature"))
    throw Error(fmt::format("{}: the checkpoint's qlab header is corrupt", path));
  const std::string expected = module->graph().signature();
  if (meta["graph_signature"] != expected)
    throw Error(fmt::format("{}: checkpoint was written for another architecture (model '{}'); "
                            "it does not fit graph {}",
                            path, meta.value("model", std::string("?")), module->graph().type_name()));
  try {
    module->load(archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: checkpoint does not match the model: {}", path,
                            e.what_without_backtrace()));
  }
  return meta;
}

}  // namespace qlab
