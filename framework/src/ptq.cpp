#include <qlab/error.hpp>
#include <qlab/passes.hpp>
#include <qlab/ptq.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

namespace qlab {
namespace {

// Ops whose int8 output takes fresh qparams; the others (relu, pooling,
// flatten, dropout) keep their input's, as PyTorch's quantized ops do.
bool needs_output_qparams(Op op) {
  switch (op) {
    case Op::input:
    case Op::conv2d:
    case Op::linear:
    case Op::add:
    case Op::batch_norm2d:
    case Op::sigmoid:
    case Op::reparameterize: return true;
    default: return false;
  }
}

QLayer quantize_weight(const GraphModule& m, const Node& n, const PtqSpec& spec) {
  QLayer l;
  torch::Tensor w, b;
  for (auto& p : m->layer(n.name)->named_parameters(false)) {
    if (p.key() == "weight") w = p.value().detach();
    if (p.key() == "bias") b = p.value().detach();
  }
  const int axis = spec.per_channel ? 0 : -1;
  if (spec.weight_bits == 1) {
    l.weight = binary_qparams(w, axis);
  } else {
    auto obs = make_observer("minmax", axis);
    obs->observe(w);
    l.weight = obs->qparams(spec.weight_bits, /*symmetric=*/true);
  }
  l.codes = quantize_codes(w, l.weight);
  l.bias = b;
  l.activation_bits = spec.activation_bits;
  return l;
}

}  // namespace

QuantizedModel post_training_quantize(GraphModule trained, const PtqSpec& spec,
                                      const Dataset& calibration) {
  if (spec.scheme != "static" && spec.scheme != "dynamic")
    throw Error(fmt::format("unknown quantization scheme '{}'", spec.scheme));
  if (spec.scheme == "static" && spec.calibration_batches <= 0)
    throw Error("[quantizer] calibration_batches = 0: static quantization fixes every activation's "
                "scale and zero point from calibration data, so with no calibration batch every "
                "scale would stay at its default and accuracy collapses; use at least 1 (default 32)");
  QuantizedModel q;
  q.scheme = spec.scheme;
  q.activation_bits = spec.activation_bits;
  q.float_module = fuse(trained);
  const Graph& g = q.graph();
  for (const auto& n : g.nodes()) {
    if (n.op != Op::conv2d && n.op != Op::linear) continue;
    if (!spec.ops.count(n.op)) {
      q.float_layers[n.name] = spec.float_reason;
      continue;
    }
    q.layers[n.name] = quantize_weight(q.float_module, n, spec);
  }
  if (spec.scheme == "dynamic") return q;

  // Calibrate on the float fused model, as PyTorch's observers do.
  std::vector<std::unique_ptr<Observer>> observers(g.nodes().size());
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    if (needs_output_qparams(g.nodes()[i].op))
      observers[i] = make_observer(spec.observer, -1, spec.percentile);
  const std::int64_t n = calibration.size();
  if (n == 0) throw Error("static quantization: the calibration (training) set is empty");
  auto gen = at::detail::createCPUGenerator(4242);
  const auto order = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  torch::NoGradGuard no_grad;
  for (std::int64_t b = 0; b < spec.calibration_batches && b * spec.batch_size < n; ++b) {
    const auto idx = order.slice(0, b * spec.batch_size, std::min(n, (b + 1) * spec.batch_size));
    q.float_module->forward(calibration.images.index_select(0, idx),
                            [&](std::size_t i, const torch::Tensor& v) {
                              if (observers[i]) observers[i]->observe(v);
                              return v;
                            });
  }
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    if (observers[i])
      q.activations[g.nodes()[i].name] =
          observers[i]->qparams(spec.activation_bits, /*symmetric=*/false, spec.reduce_range);
  return q;
}

}  // namespace qlab
