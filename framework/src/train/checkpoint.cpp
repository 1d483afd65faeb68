#include "io/safetensors.hpp"

#include <qlab/atomic_write.hpp>
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab {
namespace {

// Every parameter and buffer, by its dotted name.
std::vector<std::pair<std::string, torch::Tensor>> state_of(GraphModule& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : module->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, GraphModule& module, nlohmann::json meta) {
  meta["graph_signature"] = module->graph().signature();
  meta["format"] = kCheckpointFormat;
  write_atomically(path, safetensors_bytes(state_of(module), meta));
}

nlohmann::json load_checkpoint(const std::string& path, GraphModule& module) {
  const TensorFile file = read_safetensors(path);
  const nlohmann::json& meta = file.meta;
  if (!meta.is_object() || !meta.contains("graph_signature"))
    throw Error(fmt::format("{}: not a float checkpoint (no graph signature)", path));
  if (meta["graph_signature"] != module->graph().signature())
    throw Error(
        fmt::format("{}: checkpoint was written for another architecture (model '{}'); "
                    "it does not fit graph {}",
                    path, meta.value("model", std::string("?")), module->graph().type_name()));
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : state_of(module)) {
    const auto it = file.tensors.find(name);
    if (it == file.tensors.end())
      throw Error(fmt::format("{}: checkpoint has no tensor '{}'", path, name));
    if (it->second.sizes() != target.sizes() || it->second.scalar_type() != target.scalar_type())
      throw Error(
          fmt::format("{}: tensor '{}' is {} [{}], the model's is {} [{}]", path, name,
                      c10::toString(it->second.scalar_type()), fmt::join(it->second.sizes(), ", "),
                      c10::toString(target.scalar_type()), fmt::join(target.sizes(), ", ")));
    target.copy_(it->second);
  }
  return meta;
}

}  // namespace qlab
