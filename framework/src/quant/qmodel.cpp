// What a quantized model is: whether int8 kernels can run it, its
// calibration table, and its weights dequantized.
#include <qlab/error.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qmodel.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>

namespace qlab {
namespace {

// Why weight grid `p` has no int8 codes of one scale, or "" when it has.
std::string weight_misfit(const QParams& p) {
  if (p.binary()) return "";
  if (p.zero_point.is_floating_point())  // DoReFa: q - 1/2 is (2q + 1) half steps
    return p.bits <= 7 ? ""
                       : fmt::format("{}-bit DoReFa weights: {} half-step levels need {}-bit codes",
                                     p.bits, 1 << p.bits, p.bits + 1);
  if (p.qmin < -128 || p.qmax > 127 || p.zero_point.ne(0).any().item<bool>())
    return fmt::format("{}-bit weights do not fit int8 codes", p.bits);
  return "";
}

// Why activation grid `p` has no uint8 codes of one scale, or "" when it has.
std::string activation_misfit(const QParams& p) {
  if (p.zero_point.is_floating_point() || p.qmax - p.qmin > 255)
    return fmt::format("{}-bit activations do not fit uint8 codes", p.bits);
  return "";
}

// Why quantized layer `name` cannot run on int8 kernels, or "".
std::string layer_misfit(const QuantizedModel& m, const std::string& name, const QLayer& l) {
  if (auto why = weight_misfit(l.weight); !why.empty()) return why;
  if (m.scheme == Scheme::dynamic) {
    if (l.activation_bits == 8) return "";
    return l.activation_bits == 0
               ? "its input stays float (weights only)"
               : fmt::format("dynamic int8 kernels quantize each batch to 8 bits, not {}",
                             l.activation_bits);
  }
  if (!m.input_grid(name)) return "its input stays float (weights only)";
  if (!m.activations.count(name)) return "its output stays float";
  return "";
}

}  // namespace

const QParams* QuantizedModel::output_grid(const std::string& name) const {
  auto it = activations.find(qparams_source(graph(), name));
  return it == activations.end() ? nullptr : &it->second;
}

const QParams* QuantizedModel::input_grid(const std::string& name) const {
  return output_grid(graph().node(name).inputs.at(0));
}

Int8Codes int8_codes(const QLayer& l) {
  const QParams& p = l.weight;
  torch::Tensor codes = l.codes, scale = p.scale;
  if (p.binary()) {
    codes = codes * 2 - 1;
  } else if (p.zero_point.is_floating_point()) {
    std::vector<std::int64_t> shape(static_cast<std::size_t>(codes.dim()), 1);
    if (p.per_channel()) shape[static_cast<std::size_t>(p.axis)] = -1;
    codes = (codes.to(torch::kFloat64) - p.zero_point.view(shape)).mul(2).round();
    scale = scale / 2;
  }
  return {codes.to(torch::kInt8), scale};
}

Int32Bias int32_bias(const QLayer& l, double input_scale) {
  QLAB_CHECK(l.bias.defined(), "int32_bias of a layer without a bias");
  // The scale as runtimes compute it from the file's float32 scales.
  const torch::Tensor scale =
      int8_codes(l).scale.to(torch::kFloat32) * static_cast<float>(input_scale);
  const torch::Tensor codes = (l.bias.to(torch::kFloat64) / scale.to(torch::kFloat64))
                                  .round()
                                  .clamp(INT32_MIN, INT32_MAX)
                                  .to(torch::kInt32);
  return {codes, scale};
}

torch::Tensor Int32Bias::values() const {
  return (codes.to(torch::kFloat64) * scale.to(torch::kFloat64)).to(torch::kFloat32);
}

const char* to_string(Scheme scheme) { return scheme == Scheme::dynamic ? "dynamic" : "static"; }

std::map<std::string, std::string> QuantizedModel::int8_blockers() const {
  std::map<std::string, std::string> why;
  for (const auto& [name, l] : layers)
    if (auto w = layer_misfit(*this, name, l); !w.empty()) why[name] = w;
  for (const auto& [name, a] : activations)
    if (auto w = activation_misfit(a); !w.empty()) why.emplace(name, w);
  return why;
}

bool QuantizedModel::int8() const { return !layers.empty() && int8_blockers().empty(); }

std::string QuantizedModel::widths() const {
  std::map<std::string, int> count;
  for (const auto& [name, l] : layers) {
    int a = l.activation_bits;
    if (scheme == Scheme::static_) {
      const QParams* in = input_grid(name);
      a = in ? in->bits : 0;
    }
    ++count[fmt::format("W{}A{}", l.weight.bits, a > 0 ? std::to_string(a) : "fp")];
  }
  std::vector<std::pair<int, std::string>> order;  // most layers first
  for (const auto& [w, n] : count) order.emplace_back(-n, w);
  std::sort(order.begin(), order.end());
  std::vector<std::string> parts;
  for (const auto& [n, w] : order) parts.push_back(fmt::format("{} x{}", w, -n));
  return fmt::format("{}", fmt::join(parts, ", "));
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
    if (scheme == Scheme::dynamic && l.activation_bits > 0) {
      j["input_bits"] = l.activation_bits;
      j["input_quantization"] = "per batch, at run time";
    } else if (const auto* in = scheme == Scheme::dynamic ? nullptr : input_grid(name)) {
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
  GraphModule m = clone_module(float_module);
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  for (const auto& [name, l] : layers)
    params[name + ".weight"].copy_(dequantize_codes(l.codes, l.weight));
  m->eval();
  return m;
}

}  // namespace qlab
