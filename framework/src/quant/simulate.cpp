// A quantized model run in float with fake quantization at every grid: the
// twin int8 kernels are compared with, and how widths without kernels run.
#include <qlab/quant/qmodel.hpp>

#include <map>

namespace qlab {

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
  if (m.scheme == Scheme::static_) {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (auto it = m.activations.find(nodes[i].name); it != m.activations.end())
        fixed[i] = &it->second;
  } else {
    for (const auto& [name, l] : m.layers)
      per_batch_bits[index.at(m.graph().node(name).inputs.at(0))] = l.activation_bits;
  }
  return dequantized->forward(input, [&](std::size_t i, const torch::Tensor& v) {
    if (fixed[i]) return fake_quantize(v, *fixed[i]);
    if (per_batch_bits[i]) {
      const auto q =
          qparams_from_range(v.min().reshape({1}), v.max().reshape({1}), per_batch_bits[i], false);
      return fake_quantize(v, q);
    }
    return v;
  });
}

}  // namespace qlab
