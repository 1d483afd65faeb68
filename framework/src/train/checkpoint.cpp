#include "io/safetensors.hpp"
#include "io/torch_save.hpp"

#include <qlab/atomic_write.hpp>
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <map>

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

// Trained float weights from outside qlab: a state_dict under PyTorch's
// names, loaded strictly, as PyTorch's load_state_dict(strict=True) does.
std::vector<std::string> load_float_weights(const std::string& path, GraphModule& module) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: no such weights file", path));
  return load_float_weights(std::string((std::istreambuf_iterator<char>(in)), {}), path, module);
}

std::vector<std::string> load_float_weights(const std::string& bytes, const std::string& path,
                                            GraphModule& module) {
  // torch.save's zip (PyTorch 1.6 on), its legacy pickle stream, or safetensors.
  const bool zip = bytes.rfind("PK\x03\x04", 0) == 0 || bytes.rfind("PK\x05\x06", 0) == 0;
  if (bytes.rfind("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 0) == 0)
    throw Error(
        fmt::format("{}: torch.save's legacy format (before PyTorch 1.6); save it again with "
                    "torch.save(torch.load(\"{}\"), \"weights.pt\")",
                    path, path));
  const std::map<std::string, torch::Tensor> tensors =
      zip ? parse_torch_save(bytes, path) : parse_safetensors(bytes, path).tensors;

  std::map<std::string, torch::Tensor> wanted;
  for (auto& [name, t] : state_of(module)) wanted[name] = t;
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, target] : wanted)
    if (!tensors.count(name)) missing.push_back(name);
  for (const auto& [name, t] : tensors) {
    const auto it = wanted.find(name);
    if (it == wanted.end()) {
      unexpected.push_back(name);
    } else if (t.sizes() != it->second.sizes()) {
      mismatched.push_back(fmt::format("{}: [{}] in the file, [{}] in the model", name,
                                       fmt::join(t.sizes(), ", "),
                                       fmt::join(it->second.sizes(), ", ")));
    } else if (it->second.is_floating_point() != t.is_floating_point()) {
      mismatched.push_back(fmt::format("{}: {} in the file, {} in the model", name,
                                       c10::toString(t.scalar_type()),
                                       c10::toString(it->second.scalar_type())));
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string why =
        fmt::format("{}: the weights do not fit graph {}", path, module->graph().type_name());
    if (!missing.empty()) why += fmt::format("\n  missing key(s): {}", fmt::join(missing, ", "));
    if (!unexpected.empty())
      why += fmt::format("\n  unexpected key(s): {}", fmt::join(unexpected, ", "));
    for (const auto& m : mismatched) why += "\n  mismatch for " + m;
    throw Error(why);
  }

  std::map<std::string, std::vector<std::string>> converted;  // "F64 -> float32": names
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : wanted) {
    const torch::Tensor& t = tensors.at(name);
    if (t.scalar_type() != target.scalar_type())
      converted[fmt::format("{} to {}", c10::toString(t.scalar_type()),
                            c10::toString(target.scalar_type()))]
          .push_back(name);
    target.copy_(t);
  }
  std::vector<std::string> notes{
      fmt::format("float weights loaded from {} ({} tensors), not trained", path, wanted.size())};
  for (const auto& [how, names] : converted)
    notes.push_back(fmt::format("weights converted from {}: {}", how, fmt::join(names, ", ")));
  return notes;
}

}  // namespace qlab
