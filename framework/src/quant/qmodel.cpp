// What a quantized model is: whether int8 kernels can run it, its
// calibration table, and its weights dequantized.
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qmodel.hpp>

namespace qlab {
namespace {

// The qparams `name`'s output carries, if it is quantized.
const QParams* qparams_reaching(const QuantizedModel& m, const std::string& name) {
  auto it = m.activations.find(qparams_source(m.graph(), name));
  return it == m.activations.end() ? nullptr : &it->second;
}

}  // namespace

const char* to_string(Scheme scheme) { return scheme == Scheme::dynamic ? "dynamic" : "static"; }

bool QuantizedModel::int8() const {
  for (const auto& [name, l] : layers) {
    // A grid without a zero level (DoReFa's) has no integer zero point.
    if (l.weight.bits != 8 || l.weight.zero_point.is_floating_point()) return false;
    if (scheme == Scheme::dynamic) {
      if (l.activation_bits != 8) return false;
      continue;
    }
    const QParams* in = qparams_reaching(*this, graph().node(name).inputs.at(0));
    if (!in || !activations.count(name)) return false;
  }
  for (const auto& [name, a] : activations)
    if (a.bits != 8) return false;
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
    if (scheme == Scheme::dynamic && l.activation_bits > 0) {
      j["input_bits"] = l.activation_bits;
      j["input_quantization"] = "per batch, at run time";
    } else if (const auto* in = scheme == Scheme::dynamic
                                    ? nullptr
                                    : qparams_reaching(*this, graph().node(name).inputs.at(0))) {
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
