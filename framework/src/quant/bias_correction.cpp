#include <qlab/quant/ptq_methods.hpp>

namespace qlab {
namespace {

// The layer's pre-activation output, averaged per output channel.
torch::Tensor mean_output(const Node& n, const Slices& x, const torch::Tensor& w,
                          const torch::Tensor& b) {
  const Attrs& a = n.attrs;
  torch::Tensor sum;
  std::int64_t count = 0;
  for (const auto& part : x) {
    count += part.size(0);
    const auto y = n.op == Op::linear ? torch::linear(part, w, b)
                                      : torch::conv2d(part, w, b, a.stride, a.padding, 1, a.groups);
    const auto s = y.dim() == 4 ? y.sum({0, 2, 3}) / (y.size(2) * y.size(3)) : y.sum(0);
    sum = sum.defined() ? sum + s : s;
  }
  return sum / count;
}

}  // namespace

std::vector<std::string> correct_biases(QuantizedModel& q, const torch::Tensor& images) {
  std::vector<std::string> notes;
  walk_two_streams(q, images, [&](const Node& node, QLayer& l, const Slices& x, const Slices& xq) {
    auto bias = layer_parameter(q.float_module, node.name, "bias");
    if (!bias.defined()) {
      notes.push_back(node.name + ": no bias to correct");
      return;
    }
    torch::NoGradGuard no_grad;
    const auto wq = dequantize_codes(l.codes, l.weight).to(torch::kFloat);
    const auto w = layer_parameter(q.float_module, node.name, "weight");
    bias.sub_(mean_output(node, xq, wq, bias) - mean_output(node, x, w, bias));
    l.bias = bias.clone();
  });
  return notes;
}

}  // namespace qlab
