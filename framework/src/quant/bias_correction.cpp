#include <qlab/error.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

namespace qlab {
namespace {

// The layer's output for input `x` with weight `w` and no bias.
torch::Tensor weighted(const Node& n, const torch::Tensor& x, const torch::Tensor& w) {
  const Attrs& a = n.attrs;
  if (n.op == Op::linear) return torch::linear(x, w);
  return torch::conv2d(x, w, {}, a.stride, a.padding, 1, a.groups);
}

}  // namespace

std::vector<std::string> correct_biases(QuantizedModel& q, const Dataset& calibration,
                                        std::int64_t batches, std::int64_t batch_size) {
  const Graph& g = q.graph();
  std::vector<std::string> notes;
  std::map<std::string, torch::Tensor> delta, shift;  // per layer: W_q - W; summed output shift
  std::map<std::string, double> count;
  std::map<std::string, std::vector<std::string>> readers;  // input node -> layers reading it
  for (const auto& [name, l] : q.layers) {
    if (!layer_parameter(q.float_module, name, "bias").defined()) {
      notes.push_back(name + ": no bias to correct");
      continue;
    }
    delta[name] =
        dequantize_codes(l.codes, l.weight) - layer_parameter(q.float_module, name, "weight");
    readers[g.node(name).inputs.at(0)].push_back(name);
  }
  const std::int64_t n = calibration.size();
  if (n == 0) throw Error("bias correction: the calibration (training) set is empty");
  auto gen = at::detail::createCPUGenerator(4243);
  const auto order = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  torch::NoGradGuard no_grad;
  for (std::int64_t b = 0; b < batches && b * batch_size < n; ++b) {
    const auto idx = order.slice(0, b * batch_size, std::min(n, (b + 1) * batch_size));
    q.float_module->forward(calibration.images.index_select(0, idx),
                            [&](std::size_t i, const torch::Tensor& v) {
                              auto it = readers.find(g.nodes()[i].name);
                              if (it == readers.end()) return v;
                              for (const auto& layer : it->second) {
                                const auto y = weighted(g.node(layer), v, delta[layer]);
                                // Summed over samples and positions, per output channel.
                                count[layer] += static_cast<double>(y.numel() / y.size(1));
                                const auto s = y.dim() == 4 ? y.sum({0, 2, 3}) : y.sum(0);
                                shift[layer] = shift[layer].defined() ? shift[layer] + s : s;
                              }
                              return v;
                            });
  }
  for (const auto& [name, sum] : shift) {
    auto bias = layer_parameter(q.float_module, name, "bias");
    bias.sub_(sum / count[name]);
    q.layers[name].bias = bias.clone();
  }
  return notes;
}

}  // namespace qlab
