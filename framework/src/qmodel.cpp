#include <qlab/error.hpp>
#include <qlab/qmodel.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace qlab {
namespace {

// Archive keys may not contain dots.
std::string key(const std::string& prefix, const std::string& name) {
  std::string k = prefix + "__" + name;
  for (auto& c : k)
    if (c == '.') c = '|';
  return k;
}

// The nearest node at or before `name` whose output has qparams: relu,
// pooling, flatten and dropout keep their input's qparams.
const QParams* qparams_reaching(const QuantizedModel& m, std::string name) {
  while (true) {
    auto it = m.activations.find(name);
    if (it != m.activations.end()) return &it->second;
    const Node& n = m.graph().node(name);
    if (n.inputs.size() != 1) return nullptr;
    name = n.inputs[0];
  }
}

void copy_state(GraphModule& from, GraphModule& to) {
  torch::NoGradGuard no_grad;
  auto src = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(src[p.key()]);
  auto bufs = from->named_buffers();
  for (auto& b : to->named_buffers()) b.value().copy_(bufs[b.key()]);
}

}  // namespace

bool QuantizedModel::int8() const {
  if (scheme == "static" && activation_bits != 8) return false;
  for (const auto& [name, l] : layers)
    if (l.weight.bits != 8 || (scheme == "dynamic" && l.activation_bits != 8)) return false;
  return !layers.empty();
}

nlohmann::json QuantizedModel::calibration_config() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, l] : layers) {
    nlohmann::json j;
    j["weight_bits"] = l.weight.bits;
    const auto w = l.weight.to_json();
    j["weight_scale"] = w["scale"];
    j["weight_zero_point"] = w["zero_point"];
    j["weight_per_channel"] = l.weight.per_channel();
    if (scheme == "dynamic") {
      j["input_bits"] = l.activation_bits;
      j["input_quantization"] = "per batch, at run time";
    } else if (const auto* in = qparams_reaching(*this, graph().node(name).inputs.at(0))) {
      const auto a = in->to_json();
      j["input_bits"] = in->bits;
      j["input_scale"] = a["scale"];
      j["input_zero_point"] = a["zero_point"];
      j["tracked_min_input"] = a["tracked_min"];
      j["tracked_max_input"] = a["tracked_max"];
    }
    if (auto it = activations.find(name); it != activations.end()) {
      const auto a = it->second.to_json();
      j["output_bits"] = it->second.bits;
      j["output_scale"] = a["scale"];
      j["output_zero_point"] = a["zero_point"];
      j["tracked_min_output"] = a["tracked_min"];
      j["tracked_max_output"] = a["tracked_max"];
    }
    out[name] = j;
  }
  return out;
}

GraphModule QuantizedModel::dequantized_module() const {
  GraphModule m(graph());
  auto src = float_module;
  copy_state(src, m);
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  for (const auto& [name, l] : layers) params[name + ".weight"].copy_(dequantize_codes(l.codes, l.weight));
  m->eval();
  return m;
}

std::string serialize_quantized(const QuantizedModel& m) {
  torch::serialize::OutputArchive archive;
  nlohmann::json meta = {{"format", 1},
                         {"scheme", m.scheme},
                         {"activation_bits", m.activation_bits},
                         {"graph_signature", m.graph().signature()},
                         {"float_layers", m.float_layers}};
  for (const auto& [name, l] : m.layers) {
    meta["layers"][name] = {{"bits", l.weight.bits},       {"symmetric", l.weight.symmetric},
                            {"axis", l.weight.axis},       {"qmin", l.weight.qmin},
                            {"qmax", l.weight.qmax},       {"shape", l.codes.sizes().vec()},
                            {"activation_bits", l.activation_bits}};
    archive.write(key("codes", name), pack_codes(l.codes, l.weight.bits, l.weight.qmin));
    archive.write(key("scale", name), l.weight.scale.to(torch::kFloat32));
    archive.write(key("zero_point", name), l.weight.zero_point.to(torch::kInt32));
    archive.write(key("wmin", name), l.weight.min.to(torch::kFloat32));
    archive.write(key("wmax", name), l.weight.max.to(torch::kFloat32));
  }
  for (const auto& [name, q] : m.activations) {
    meta["activations"][name] = {{"bits", q.bits},
                                 {"symmetric", q.symmetric},
                                 {"qmin", q.qmin},
                                 {"qmax", q.qmax},
                                 {"scale", q.scale.item<double>()},
                                 {"zero_point", q.zero_point.item<std::int64_t>()},
                                 {"min", q.min.item<double>()},
                                 {"max", q.max.item<double>()}};
  }
  // Float tensors: biases, batch norms and float layers; never a quantized weight.
  for (const auto& p : m.float_module->named_parameters()) {
    const auto dot = p.key().rfind('.');
    if (m.layers.count(p.key().substr(0, dot)) && p.key().substr(dot + 1) == "weight") continue;
    archive.write(key("float", p.key()), p.value().detach());
  }
  for (const auto& b : m.float_module->named_buffers()) archive.write(key("float", b.key()), b.value());
  archive.write("qlab_meta", c10::IValue(meta.dump()));
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void save_quantized(const std::string& path, const QuantizedModel& model) {
  const std::string bytes = serialize_quantized(model);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw Error(fmt::format("{}: cannot write quantized checkpoint", path));
  }
  std::filesystem::rename(tmp, path);
}

QuantizedModel load_quantized(const std::string& path, const Graph& fused) {
  if (!std::filesystem::is_regular_file(path)) throw Error(fmt::format("{}: no such checkpoint", path));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a readable checkpoint (truncated or corrupt)", path));
  }
  c10::IValue raw;
  if (!archive.try_read("qlab_meta", raw) || !raw.isString())
    throw Error(fmt::format("{}: not a qlab quantized checkpoint", path));
  const auto meta = nlohmann::json::parse(raw.toStringRef(), nullptr, false);
  if (meta.is_discarded() || !meta.contains("scheme"))
    throw Error(fmt::format("{}: not a qlab quantized checkpoint (no quantization header)", path));
  if (meta.value("graph_signature", std::string()) != fused.signature())
    throw Error(fmt::format("{}: quantized checkpoint was written for another architecture", path));
  QuantizedModel m;
  try {
    m.scheme = meta["scheme"];
    m.activation_bits = meta["activation_bits"];
    m.float_layers = meta["float_layers"].get<std::map<std::string, std::string>>();
    m.float_module = GraphModule(fused);
    torch::NoGradGuard no_grad;
    for (auto& p : m.float_module->named_parameters()) {
      torch::Tensor t;
      if (archive.try_read(key("float", p.key()), t)) p.value().copy_(t);
    }
    for (auto& b : m.float_module->named_buffers()) {
      torch::Tensor t;
      archive.read(key("float", b.key()), t);
      b.value().copy_(t);
    }
    for (const auto& [name, j] : meta.value("layers", nlohmann::json::object()).items()) {
      QLayer l;
      l.weight.bits = j["bits"];
      l.weight.symmetric = j["symmetric"];
      l.weight.axis = j["axis"];
      l.weight.qmin = j["qmin"];
      l.weight.qmax = j["qmax"];
      l.activation_bits = j["activation_bits"];
      torch::Tensor packed, scale, zp, wmin, wmax;
      archive.read(key("codes", name), packed);
      archive.read(key("scale", name), scale);
      archive.read(key("zero_point", name), zp);
      archive.read(key("wmin", name), wmin);
      archive.read(key("wmax", name), wmax);
      const auto shape = j["shape"].get<std::vector<std::int64_t>>();
      std::int64_t numel = 1;
      for (auto d : shape) numel *= d;
      l.codes = unpack_codes(packed, l.weight.bits, l.weight.qmin, numel).view(shape);
      l.weight.scale = scale.to(torch::kFloat64);
      l.weight.zero_point = zp.to(torch::kInt64);
      l.weight.min = wmin.to(torch::kFloat64);
      l.weight.max = wmax.to(torch::kFloat64);
      auto layer = m.float_module->layer(name);
      for (auto& p : layer->named_parameters(false))
        if (p.key() == "bias") l.bias = p.value().detach();
      m.layers[name] = std::move(l);
    }
    for (const auto& [name, j] : meta.value("activations", nlohmann::json::object()).items()) {
      QParams q;
      q.bits = j["bits"];
      q.symmetric = j["symmetric"];
      q.qmin = j["qmin"];
      q.qmax = j["qmax"];
      q.scale = torch::tensor({j["scale"].get<double>()}, torch::kFloat64);
      q.zero_point = torch::tensor({j["zero_point"].get<std::int64_t>()}, torch::kInt64);
      q.min = torch::tensor({j["min"].get<double>()}, torch::kFloat64);
      q.max = torch::tensor({j["max"].get<double>()}, torch::kFloat64);
      m.activations[name] = q;
    }
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: quantized checkpoint is incomplete: {}", path, e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: quantized checkpoint header is corrupt: {}", path, e.what()));
  }
  m.float_module->eval();
  return m;
}

std::int64_t serialized_float_bytes(GraphModule module) {
  torch::serialize::OutputArchive archive;
  module->save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return static_cast<std::int64_t>(out.str().size());
}

std::vector<torch::Tensor> simulate(const QuantizedModel& m, GraphModule dequantized,
                                    const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  const auto& nodes = m.graph().nodes();
  // Static: each observed output is fake-quantized with its calibrated qparams.
  // Dynamic: the input of each quantized layer is fake-quantized per batch.
  std::vector<const QParams*> fixed(nodes.size(), nullptr);
  std::vector<int> per_batch_bits(nodes.size(), 0);
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < nodes.size(); ++i) index[nodes[i].name] = i;
  if (m.scheme == "static") {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (auto it = m.activations.find(nodes[i].name); it != m.activations.end()) fixed[i] = &it->second;
  } else {
    for (const auto& [name, l] : m.layers)
      per_batch_bits[index.at(m.graph().node(name).inputs.at(0))] = l.activation_bits;
  }
  return dequantized->forward(input, [&](std::size_t i, const torch::Tensor& v) {
    if (fixed[i]) return fake_quantize(v, *fixed[i]);
    if (per_batch_bits[i]) {
      const auto q = qparams_from_range(v.min().reshape({1}), v.max().reshape({1}), per_batch_bits[i], false);
      return fake_quantize(v, q);
    }
    return v;
  });
}

}  // namespace qlab
