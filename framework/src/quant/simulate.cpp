// A quantized model run in float with fake quantization at every grid: the
// twin int8 kernels are compared with, and how widths without kernels run.
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qmodel.hpp>
#include <qlab/quant/simulation.hpp>

#include <map>

namespace qlab {
namespace {

// An average of codes rounded back onto their grid as the int8 kernels and
// ONNX's QuantizeLinear round it: half to even among the values (x / s). The
// float mean can miss an exact tie k + 1/2 by a rounding error; a mean of n
// codes is a multiple of 1/n, so a value within 1e-4 of a tie is one
// (n < 5000).
torch::Tensor round_onto_grid(const torch::Tensor& x, const QParams& p) {
  const double scale = p.scale.item<double>();
  const auto zp = static_cast<double>(p.zero_point.item<std::int64_t>());
  auto steps = x.to(torch::kFloat64).div(scale);
  const auto whole = steps.floor();
  steps = torch::where((steps - whole - 0.5).abs() < 1e-4, whole + 0.5, steps);
  return steps.round().add(zp).clamp(p.qmin, p.qmax).sub(zp).mul(scale).to(x.dtype());
}

}  // namespace

GraphModuleImpl::NodeHook simulation_hook(const QuantizedModel& m) {
  const auto& nodes = m.graph().nodes();
  // Static: each observed output is fake-quantized with its calibrated
  // qparams, and an average pooling of a quantized map is rounded back onto
  // that map's grid, as the int8 kernels do. Dynamic: the input of each
  // quantized layer is fake-quantized per batch.
  std::vector<const QParams*> fixed(nodes.size(), nullptr);
  std::vector<bool> regrid(nodes.size(), false);
  std::vector<int> per_batch_bits(nodes.size(), 0);
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < nodes.size(); ++i) index[nodes[i].name] = i;
  if (m.scheme == Scheme::static_) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      regrid[i] = op_info(nodes[i].op).rounds_to_input_grid;
      const std::string name = regrid[i] ? qparams_source(m.graph(), nodes[i].name) : nodes[i].name;
      if (auto it = m.activations.find(name); it != m.activations.end()) fixed[i] = &it->second;
    }
  } else {
    for (const auto& [name, l] : m.layers)
      per_batch_bits[index.at(m.graph().node(name).inputs.at(0))] = l.activation_bits;
  }
  return [fixed, regrid, per_batch_bits](std::size_t i, const torch::Tensor& v) {
    if (fixed[i]) return regrid[i] ? round_onto_grid(v, *fixed[i]) : fake_quantize(v, *fixed[i]);
    if (per_batch_bits[i]) {
      const auto q =
          qparams_from_range(v.min().reshape({1}), v.max().reshape({1}), per_batch_bits[i], false);
      return fake_quantize(v, q);
    }
    return v;
  };
}

std::vector<torch::Tensor> simulate(const QuantizedModel& m, GraphModule dequantized,
                                    const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  return dequantized->forward(input, simulation_hook(m));
}

}  // namespace qlab
