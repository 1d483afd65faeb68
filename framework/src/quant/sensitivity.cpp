// Per-layer sensitivity to weight quantization, measured or estimated.
#include <qlab/error.hpp>
#include <qlab/quant/mixed_precision.hpp>
#include <qlab/quant/ptq.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

namespace qlab {
namespace {

// The weight as round-to-nearest at `bits` leaves it.
torch::Tensor rounded_weight(const torch::Tensor& w, int bits, const SensitivitySpec& spec) {
  const QLayer l = quantize_weight(w, torch::Tensor(), bits, spec.per_channel, spec.weight_range,
                                   spec.narrow_range);
  return dequantize_codes(l.codes, l.weight).to(w.dtype()).view_as(w);
}

std::size_t node_index(const Graph& g, const std::string& name) {
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    if (g.nodes()[i].name == name) return i;
  throw Error(fmt::format("mixed precision: the model has no layer '{}'", name));
}

// The mean loss over `sample`, with `weights` in place of the module's own.
double mean_loss(GraphModule m, const Model& model, const Dataset& sample, std::int64_t batch,
                 const std::map<std::size_t, torch::Tensor>& weights) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = sample.size();
  double total = 0;
  for (std::int64_t start = 0; start < n; start += batch) {
    const std::int64_t end = std::min(n, start + batch);
    const auto images = sample.images.slice(0, start, end);
    const auto labels =
        sample.labels.defined() ? sample.labels.slice(0, start, end) : torch::Tensor();
    const auto out = m->forward(
        images, [](std::size_t, const torch::Tensor& v) { return v; },
        [&](std::size_t i, const torch::Tensor& w) {
          auto it = weights.find(i);
          return it == weights.end() ? w : it->second;
        });
    total += model.loss(out, images, labels).item<double>() * static_cast<double>(end - start);
  }
  return total / static_cast<double>(n);
}

// Hutchinson's estimate of the mean of the Hessian's diagonal over each
// layer's weight: E[v' H v] / n for Rademacher v, with Hv by differentiating
// the gradient once more (Pearlmutter's trick through autograd).
std::map<std::string, double> mean_hessian_diagonal(GraphModule m, const Model& model,
                                                    const Dataset& sample,
                                                    const std::vector<std::string>& layers,
                                                    const SensitivitySpec& spec) {
  std::vector<torch::Tensor> params;
  for (const auto& name : layers) params.push_back(m->layer(name)->named_parameters()["weight"]);
  std::vector<double> sums(layers.size(), 0.0);
  auto gen = at::detail::createCPUGenerator(4246);
  const std::int64_t n = sample.size();
  for (std::int64_t start = 0; start < n; start += spec.batch_size) {
    const std::int64_t end = std::min(n, start + spec.batch_size);
    const auto images = sample.images.slice(0, start, end);
    const auto labels =
        sample.labels.defined() ? sample.labels.slice(0, start, end) : torch::Tensor();
    const auto loss = model.loss(m->forward(images), images, labels);
    const auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true,
                                             /*create_graph=*/true);
    for (int k = 0; k < spec.hessian_probes; ++k) {
      std::vector<torch::Tensor> vs;
      torch::Tensor dot = torch::zeros({});
      for (std::size_t i = 0; i < params.size(); ++i) {
        vs.push_back(torch::randint(0, 2, params[i].sizes(), gen, params[i].options()) * 2 - 1);
        dot = dot + (grads[i] * vs.back()).sum();
      }
      const auto hv = torch::autograd::grad({dot}, params, {}, /*retain_graph=*/true);
      for (std::size_t i = 0; i < params.size(); ++i)
        sums[i] += (hv[i] * vs[i]).sum().item<double>() * static_cast<double>(end - start) /
                   static_cast<double>(params[i].numel());
    }
  }
  std::map<std::string, double> out;
  for (std::size_t i = 0; i < layers.size(); ++i)
    out[layers[i]] = sums[i] / (static_cast<double>(n) * spec.hessian_probes);
  return out;
}

}  // namespace

std::vector<LayerSensitivity> layer_sensitivity(GraphModule fused, const Model& model,
                                                const Dataset& sample,
                                                const std::vector<std::string>& layers,
                                                const SensitivitySpec& spec) {
  if (sample.size() == 0) throw Error("mixed precision: the calibration sample is empty");
  if (spec.bits.empty()) throw Error("mixed precision: no widths to choose from");
  const Graph& g = fused->graph();
  std::map<std::string, const LayerStats*> stats;
  const auto all = g.stats();
  for (const auto& s : all) stats[s.name] = &s;
  std::vector<LayerSensitivity> out;
  fused->eval();
  if (spec.method == SensitivityMethod::loss) {
    const double float_loss = mean_loss(fused, model, sample, spec.batch_size, {});
    for (const auto& name : layers) {
      LayerSensitivity s{name, 0, stats.at(name)->macs, {}};
      const auto w = layer_parameter(fused, name, "weight");
      s.weights = w.numel();
      for (int bits : spec.bits) {
        const std::map<std::size_t, torch::Tensor> swapped{
            {node_index(g, name), rounded_weight(w, bits, spec)}};
        s.by_bits[bits] = mean_loss(fused, model, sample, spec.batch_size, swapped) - float_loss;
      }
      out.push_back(std::move(s));
    }
    return out;
  }
  const auto diagonal = mean_hessian_diagonal(fused, model, sample, layers, spec);
  for (const auto& name : layers) {
    LayerSensitivity s{name, 0, stats.at(name)->macs, {}};
    const auto w = layer_parameter(fused, name, "weight");
    s.weights = w.numel();
    for (int bits : spec.bits)
      s.by_bits[bits] =
          0.5 * diagonal.at(name) * (rounded_weight(w, bits, spec) - w).pow(2).sum().item<double>();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace qlab
