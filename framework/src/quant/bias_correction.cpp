#include <qlab/quant/ptq_methods.hpp>

namespace qlab {
namespace {

// The layer's pre-activation output, averaged per output channel.
torch::Tensor mean_output(const Node& n, const torch::Tensor& x, const torch::Tensor& w,
                          const torch::Tensor& b) {
  const Attrs& a = n.attrs;
  const auto y = n.op == Op::linear ? torch::linear(x, w, b)
                                    : torch::conv2d(x, w, b, a.stride, a.padding, 1, a.groups);
  return y.dim() == 4 ? y.mean({0, 2, 3}) : y.mean(0);
}

}  // namespace

std::vector<std::string> correct_biases(QuantizedModel& q, const torch::Tensor& images,
                                        std::int64_t batch_size) {
  const Graph& g = q.graph();
  const GraphModule reference = clone_module(q.float_module);  // keeps the float biases
  std::map<std::string, torch::Tensor> quantized;  // dequantized weights of the layers done
  std::vector<std::string> notes;
  torch::NoGradGuard no_grad;
  for (const auto& node : g.nodes()) {
    auto it = q.layers.find(node.name);
    if (it == q.layers.end()) continue;
    QLayer& l = it->second;
    const auto wq = dequantize_codes(l.codes, l.weight);
    auto bias = layer_parameter(q.float_module, node.name, "bias");
    if (!bias.defined()) {
      notes.push_back(node.name + ": no bias to correct");
      quantized[node.name] = wq;
      continue;
    }
    const auto w = layer_parameter(reference, node.name, "weight");
    const auto b = layer_parameter(reference, node.name, "bias");
    torch::Tensor shift = torch::zeros_like(b);
    const std::int64_t n = images.size(0);
    for (std::int64_t start = 0; start < n; start += batch_size) {
      const auto x = images.slice(0, start, std::min(n, start + batch_size));
      const auto fp = node_output(reference, x, node.inputs.at(0), {});
      const auto xq = node_output(q.float_module, x, node.inputs.at(0), quantized);
      const double share = static_cast<double>(x.size(0)) / static_cast<double>(n);
      shift += (mean_output(node, xq, wq, bias) - mean_output(node, fp, w, b)) * share;
    }
    bias.sub_(shift);
    l.bias = bias.clone();
    quantized[node.name] = wq;
  }
  return notes;
}

}  // namespace qlab
