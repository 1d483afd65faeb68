#include <qlab/error.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>

namespace qlab {
namespace {

// The rectified sigmoid of the paper (section 3.2): stretched to
// [gamma, zeta] and clipped to [0, 1], so it can reach 0 and 1 exactly.
constexpr double kZeta = 1.1, kGamma = -0.1;

torch::Tensor rectified_sigmoid(const torch::Tensor& v) {
  return (torch::sigmoid(v) * (kZeta - kGamma) + kGamma).clamp(0, 1);
}

// `t`, one value per output channel or one in all, shaped to broadcast over `w`.
torch::Tensor per_channel(const torch::Tensor& t, const torch::Tensor& w) {
  if (t.numel() == 1) return t.reshape({});
  std::vector<std::int64_t> shape(w.dim(), 1);
  shape[0] = -1;
  return t.view(shape);
}

// Learns one layer's rounding; returns its new codes.
torch::Tensor learn_rounding(const GraphModule& m, const Node& node, const QLayer& l,
                             const torch::Tensor& x_float, const torch::Tensor& x_rounded,
                             const AdaRoundOptions& o) {
  const auto w = layer_parameter(m, node.name, "weight");
  torch::Tensor target;
  {
    torch::NoGradGuard no_grad;
    target = layer_output(m, node, x_float, w);
  }
  const auto scale = per_channel(l.weight.scale.to(torch::kFloat), w);
  const auto zero = per_channel(l.weight.zero_point.to(torch::kFloat), w);
  const auto scaled = w / scale;
  const auto floor = scaled.floor();
  // Start where nearest rounding's soft version is: h(V) = the fraction.
  const auto rest = (scaled - floor).clamp(0.01, 0.99);
  auto v = (-torch::log((kZeta - kGamma) / (rest - kGamma) - 1)).detach().requires_grad_(true);
  torch::optim::Adam adam({v}, torch::optim::AdamOptions(o.learning_rate));
  auto pick = at::detail::createCPUGenerator(4245);
  const double qmin = static_cast<double>(l.weight.qmin), qmax = static_cast<double>(l.weight.qmax);
  const int warm_up = static_cast<int>(0.2 * o.iterations);
  const std::int64_t n = x_rounded.size(0);
  for (int step = 0; step < o.iterations; ++step) {
    const auto idx = torch::randint(n, {std::min(o.batch, n)}, pick,
                                    torch::TensorOptions().dtype(torch::kInt64));
    const auto h = rectified_sigmoid(v);
    const auto soft = ((floor + h + zero).clamp(qmin, qmax) - zero) * scale;
    const auto out = layer_output(m, node, x_rounded.index_select(0, idx), soft);
    auto loss = (out - target.index_select(0, idx)).pow(2).sum(1).mean();
    // After a warm-up, a regulariser pulls each h to 0 or 1, its exponent
    // annealed from 20 (flat: free to move) to 2 (steep: decided).
    if (step >= warm_up) {
      const double progress =
          static_cast<double>(step - warm_up) / std::max(1, o.iterations - warm_up);
      const double beta = 2 + (20 - 2) * (1 - progress);
      loss = loss + o.regularization * (1 - (2 * h - 1).abs().pow(beta)).sum();
    }
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  torch::NoGradGuard no_grad;
  const auto up = rectified_sigmoid(v).ge(0.5).to(torch::kFloat);
  return (floor + up + zero).clamp(qmin, qmax).to(torch::kInt64);
}

}  // namespace

torch::Tensor layer_output(const GraphModule& m, const Node& n, const torch::Tensor& x,
                           const torch::Tensor& w) {
  return op_info(n.op).forward(OpCall{n.attrs, {x}, m->layer(n.name).get(), w});
}

std::vector<std::string> adaround(QuantizedModel& q, const Dataset& calibration,
                                  const AdaRoundOptions& o) {
  const auto images = calibration_sample(calibration, o.samples, 4244, "adaround");
  std::vector<std::string> notes;
  std::int64_t flipped = 0, total = 0;
  // The float model's input to each layer gives the target; the input the
  // already-rounded layers before it produce is what it must fit.
  walk_two_streams(q, images, [&](const Node& node, QLayer& l, const Slices& x, const Slices& xq) {
    if (l.weight.binary() || l.weight.zero_point.is_floating_point()) {
      notes.push_back(node.name + ": its grid has no rounding to learn (binary or half-step)");
      return;
    }
    const auto codes = learn_rounding(q.float_module, node, l, torch::cat(x), torch::cat(xq), o);
    flipped += codes.ne(l.codes).sum().item<std::int64_t>();
    total += codes.numel();
    l.codes = codes;
  });
  notes.insert(notes.begin(),
               fmt::format("adaround: {} iterations a layer on {} calibration images; {:.1f}% of "
                           "the weights round the other way than nearest",
                           o.iterations, images.size(0),
                           100.0 * flipped / std::max<std::int64_t>(1, total)));
  return notes;
}

}  // namespace qlab
