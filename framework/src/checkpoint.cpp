#include "archive_io.hpp"

#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>


namespace qlab {
void save_checkpoint(const std::string& path, GraphModule& module, nlohmann::json meta) {
  meta["graph_signature"] = module->graph().signature();
  meta["format"] = 1;
  torch::serialize::OutputArchive archive;
  module->save(archive);
  write_atomically(path, archive_bytes(archive, meta));
}

nlohmann::json load_checkpoint(const std::string& path, GraphModule& module) {
  torch::serialize::InputArchive archive;
  const nlohmann::json meta = open_archive(path, archive);
  if (!meta.contains("graph_signature"))
    throw Error(fmt::format("{}: not a float checkpoint (no graph signature)", path));
  if (meta["graph_signature"] != module->graph().signature())
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
