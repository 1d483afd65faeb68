// A quantized model on disk: what --save-quantized writes and the size
// metric counts, and reading it back.
#include <qlab/error.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qmodel.hpp>

#include "experiment/stable_hash.hpp"
#include "io/archive_io.hpp"

#include <fmt/format.h>

#include <set>
#include <sstream>

namespace qlab {

namespace {

// The layout below; bump it on any change, so that an older reader refuses
// a newer file with a message instead of misreading it.
constexpr int kQuantizedFormat = 2;

}  // namespace

// The shipped form keeps the tensor count small (each archive entry costs
// about a kilobyte of container overhead): all packed codes in one byte blob,
// all scales in one float32 blob, all biases and remaining float tensors in
// one float32 blob, the layout in a JSON header. Symmetric weights have zero
// points of 0 and store none.

std::string serialize_quantized(const QuantizedModel& m) {
  nlohmann::json meta = {{"format", kQuantizedFormat},
                         {"scheme", to_string(m.scheme)},
                         {"graph", stable_hash(m.graph().signature())},
                         {"float_layers", m.float_layers}};
  std::vector<torch::Tensor> codes, scales, zero_points, floats;
  std::int64_t code_bytes = 0;
  std::set<std::string> shipped;  // float tensors already in a layer's record
  for (const auto& [name, l] : m.layers) {
    auto packed = pack_codes(l.codes, l.weight.bits, l.weight.qmin);
    meta["layers"][name] = {{"bits", l.weight.bits},
                            {"symmetric", l.weight.symmetric},
                            {"axis", l.weight.axis},
                            {"qmin", l.weight.qmin},
                            {"qmax", l.weight.qmax},
                            {"shape", l.codes.sizes().vec()},
                            {"activation_bits", l.activation_bits},
                            {"code_offset", code_bytes},
                            {"channels", l.weight.scale.numel()}};
    if (l.weight.zero_point.is_floating_point())  // DoReFa's half-step grid: one per tensor
      meta["layers"][name]["fractional_zero_point"] = l.weight.zero_point.item<double>();
    code_bytes += packed.numel();
    codes.push_back(packed);
    scales.push_back(l.weight.scale.to(torch::kFloat32));
    if (!l.weight.symmetric) zero_points.push_back(l.weight.zero_point.to(torch::kInt32));
    shipped.insert(name + ".weight");
  }
  for (const auto& [name, q] : m.activations)
    meta["activations"][name] = {{"bits", q.bits},
                                 {"symmetric", q.symmetric},
                                 {"qmin", q.qmin},
                                 {"qmax", q.qmax},
                                 {"scale", q.scale.item<double>()},
                                 {"zero_point", q.zero_point.item<std::int64_t>()},
                                 {"min", q.min.item<double>()},
                                 {"max", q.max.item<double>()}};
  auto add_float = [&](const std::string& name, const torch::Tensor& t) {
    if (shipped.count(name)) return;
    meta["floats"].push_back({name, t.sizes().vec()});
    floats.push_back(t.detach().to(torch::kFloat32).reshape({-1}));
  };
  for (const auto& p : m.float_module->named_parameters()) add_float(p.key(), p.value());
  for (const auto& b : m.float_module->named_buffers()) add_float(b.key(), b.value());

  torch::serialize::OutputArchive archive;
  auto blob = [](std::vector<torch::Tensor>& parts, torch::ScalarType type) {
    return parts.empty() ? torch::empty({0}, type) : torch::cat(parts);
  };
  archive.write("codes", blob(codes, torch::kUInt8));
  archive.write("scales", blob(scales, torch::kFloat32));
  archive.write("zero_points", blob(zero_points, torch::kInt32));
  archive.write("floats", blob(floats, torch::kFloat32));
  return archive_bytes(archive, meta);
}

void save_quantized(const std::string& path, const QuantizedModel& model) {
  write_atomically(path, serialize_quantized(model));
}

namespace {

// The packed blobs of a quantized checkpoint.
struct Blobs {
  torch::Tensor codes, scales, zero_points, floats;
};

// Float parameters and buffers, in the order the header lists them.
void read_floats(const std::string& path, const nlohmann::json& list, const torch::Tensor& floats,
                 GraphModule& module) {
  auto params = module->named_parameters();
  auto buffers = module->named_buffers();
  std::int64_t offset = 0;
  for (const auto& f : list) {
    const std::string name = f[0];
    const auto shape = f[1].get<std::vector<std::int64_t>>();
    torch::Tensor* dst = params.find(name) ? params.find(name) : buffers.find(name);
    if (!dst)
      throw Error(fmt::format("{}: checkpoint holds '{}', which the model lacks", path, name));
    const auto n = dst->numel();
    dst->copy_(floats.slice(0, offset, offset + n).view(shape));
    offset += n;
  }
}

// One layer's codes and weight grid; `scale_at`, `zp_at`: where its scales
// and zero points start in their blobs, advanced past them.
QLayer read_layer(const nlohmann::json& j, const Blobs& b, std::int64_t& scale_at,
                  std::int64_t& zp_at) {
  QLayer l;
  l.weight.bits = j["bits"];
  l.weight.symmetric = j["symmetric"];
  l.weight.axis = j["axis"];
  l.weight.qmin = j["qmin"];
  l.weight.qmax = j["qmax"];
  l.activation_bits = j["activation_bits"];
  const auto shape = j["shape"].get<std::vector<std::int64_t>>();
  const std::int64_t channels = j["channels"];
  std::int64_t numel = 1;
  for (auto d : shape) numel *= d;
  const std::int64_t begin = j["code_offset"];
  const std::int64_t bytes = (numel * l.weight.bits + 7) / 8;
  l.codes =
      unpack_codes(b.codes.slice(0, begin, begin + bytes), l.weight.bits, l.weight.qmin, numel)
          .view(shape);
  l.weight.scale = b.scales.slice(0, scale_at, scale_at + channels).to(torch::kFloat64);
  scale_at += channels;
  if (j.contains("fractional_zero_point")) {
    l.weight.zero_point =
        torch::full({channels}, j["fractional_zero_point"].get<double>(), torch::kFloat64);
  } else if (l.weight.symmetric) {
    l.weight.zero_point = torch::zeros({channels}, torch::kInt64);
  } else {
    l.weight.zero_point = b.zero_points.slice(0, zp_at, zp_at + channels).to(torch::kInt64);
    zp_at += channels;
  }
  // The tracked range is not shipped; the dequantized weights stand for it.
  const auto w = dequantize_codes(l.codes, l.weight);
  const auto flat = l.weight.axis < 0 ? w.reshape({1, -1}) : w.reshape({shape[0], -1});
  l.weight.min = flat.amin(1).to(torch::kFloat64);
  l.weight.max = flat.amax(1).to(torch::kFloat64);
  return l;
}

QParams read_activation(const nlohmann::json& j) {
  QParams q;
  q.bits = j["bits"];
  q.symmetric = j["symmetric"];
  q.qmin = j["qmin"];
  q.qmax = j["qmax"];
  q.scale = torch::tensor({j["scale"].get<double>()}, torch::kFloat64);
  q.zero_point = torch::tensor({j["zero_point"].get<std::int64_t>()}, torch::kInt64);
  q.min = torch::tensor({j["min"].get<double>()}, torch::kFloat64);
  q.max = torch::tensor({j["max"].get<double>()}, torch::kFloat64);
  return q;
}

// The model the checked header describes; throws whatever the archive or
// the JSON library throws on a short or corrupt file.
QuantizedModel read_model(const std::string& path, const nlohmann::json& meta,
                          torch::serialize::InputArchive& archive, const Graph& fused) {
  QuantizedModel m;
  const std::string scheme = meta["scheme"];
  if (scheme != "static" && scheme != "dynamic")
    throw Error(
        fmt::format("{}: unknown quantization scheme '{}' (static or dynamic)", path, scheme));
  m.scheme = scheme == "dynamic" ? Scheme::dynamic : Scheme::static_;
  m.float_layers = meta["float_layers"].get<std::map<std::string, std::string>>();
  m.float_module = GraphModule(fused);
  // Missing sections are empty (a model with no float tensors, say).
  const nlohmann::json none = nlohmann::json::object(), no_list = nlohmann::json::array();
  const auto section = [&](const char* key, const nlohmann::json& empty) -> const nlohmann::json& {
    return meta.contains(key) ? meta.at(key) : empty;
  };
  Blobs b;
  archive.read("codes", b.codes);
  archive.read("scales", b.scales);
  archive.read("zero_points", b.zero_points);
  archive.read("floats", b.floats);
  torch::NoGradGuard no_grad;
  read_floats(path, section("floats", no_list), b.floats, m.float_module);
  auto params = m.float_module->named_parameters();
  std::int64_t scale_at = 0, zp_at = 0;
  for (const auto& [name, j] : section("layers", none).items()) {
    QLayer l = read_layer(j, b, scale_at, zp_at);
    if (auto* bias = params.find(name + ".bias")) l.bias = bias->detach();
    m.layers[name] = std::move(l);
  }
  for (const auto& [name, j] : section("activations", none).items())
    m.activations[name] = read_activation(j);
  return m;
}

}  // namespace

QuantizedModel load_quantized(const std::string& path, const Graph& fused) {
  torch::serialize::InputArchive archive;
  const auto meta = open_archive(path, archive);
  if (!meta.contains("scheme"))
    throw Error(fmt::format("{}: not a qlab quantized checkpoint (no quantization header)", path));
  if (!meta.contains("format") || meta["format"] != kQuantizedFormat)
    throw Error(fmt::format(
        "{}: quantized checkpoint format {} is not the {} this qlab reads; "
        "quantize the model again with this qlab",
        path, meta.contains("format") ? meta["format"].dump() : "(none)", kQuantizedFormat));
  if (meta.value("graph", std::string()) != stable_hash(fused.signature()))
    throw Error(fmt::format("{}: quantized checkpoint was written for another architecture", path));
  QuantizedModel m;
  try {
    m = read_model(path, meta, archive, fused);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: quantized checkpoint is incomplete: {}", path,
                            e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: quantized checkpoint header is corrupt: {}", path, e.what()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // LibTorch's parser throws plain runtime_error
    throw Error(fmt::format("{}: quantized checkpoint is incomplete: {}", path, e.what()));
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

}  // namespace qlab
