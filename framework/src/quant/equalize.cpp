#include <qlab/quant/passes.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <fmt/format.h>

namespace qlab {
namespace {

struct Pair {
  std::string first, second;
};

bool depthwise(const Attrs& a) { return a.groups > 1 && a.groups == a.in && a.groups == a.out; }

// Ops between two layers that commute with a positive per-channel scale.
bool scale_invariant(Op op) {
  return op == Op::relu || op == Op::max_pool2d || op == Op::avg_pool2d ||
         op == Op::adaptive_avg_pool2d || op == Op::dropout;
}

// Each weighted node with the layer it alone feeds, through scale-invariant
// ops; pairs that cannot be equalized go to `skipped` with the reason.
std::vector<Pair> find_pairs(const Graph& g, std::vector<std::string>& skipped) {
  std::vector<Pair> pairs;
  for (const auto& a : g.nodes()) {
    if (!op_info(a.op).weighted) continue;
    const Node* next = sole_consumer(g, a.name);
    std::string blocker;
    while (next && !op_info(next->op).weighted) {
      if (!scale_invariant(next->op)) {
        if (next->op == Op::relu6) blocker = "ReLU6 " + next->name;
        break;
      }
      next = sole_consumer(g, next->name);
    }
    if (!next || !op_info(next->op).weighted) {
      if (!blocker.empty())
        skipped.push_back(
            fmt::format("{}: {} between it and the next layer; its clip at 6 "
                        "does not commute with a scale",
                        a.name, blocker));
      continue;
    }
    const std::string pair = a.name + " -> " + next->name;
    if (a.attrs.activation == Activation::relu6)
      skipped.push_back(pair + ": fused ReLU6; its clip at 6 does not commute with a scale");
    else if (next->op != a.op)
      skipped.push_back(pair + ": a conv2d and a linear");
    else if (next->op == Op::conv2d && next->attrs.groups != 1 && !depthwise(next->attrs))
      skipped.push_back(pair + ": grouped convolution");
    else
      pairs.push_back({a.name, next->name});
  }
  return pairs;
}

// Largest absolute weight per output channel (dim 0) of the first layer,
// and per input channel of the second (dim 1, or dim 0 when depthwise).
torch::Tensor out_ranges(const torch::Tensor& w) { return w.abs().flatten(1).amax(1); }

torch::Tensor in_ranges(const torch::Tensor& w, bool is_depthwise) {
  if (is_depthwise) return out_ranges(w);
  return w.abs().transpose(0, 1).flatten(1).amax(1);
}

// Shape that broadcasts a per-channel vector along `dim` of a `rank`-D weight.
std::vector<std::int64_t> along(std::int64_t dim, std::int64_t rank) {
  std::vector<std::int64_t> shape(rank, 1);
  shape[dim] = -1;
  return shape;
}

}  // namespace

Equalization cross_layer_equalize(GraphModule& fused, int sweeps) {
  Equalization report;
  const Graph& g = fused->graph();
  const auto pairs = find_pairs(g, report.skipped);
  torch::NoGradGuard no_grad;
  for (int sweep = 0; sweep < sweeps; ++sweep)
    for (const auto& [first, second] : pairs) {
      auto w1 = layer_parameter(fused, first, "weight");
      auto b1 = layer_parameter(fused, first, "bias");
      auto w2 = layer_parameter(fused, second, "weight");
      const bool dw = depthwise(g.node(second).attrs);
      const auto r1 = out_ranges(w1), r2 = in_ranges(w2, dw);
      // A dead channel (all zero weights on either side) keeps its scale.
      const auto s = torch::where((r1 > 0) & (r2 > 0), (r1 / r2).sqrt(), torch::ones_like(r1));
      w1.div_(s.view(along(0, w1.dim())));
      if (b1.defined()) b1.div_(s);
      w2.mul_(s.view(along(dw ? 0 : 1, w2.dim())));
    }
  for (const auto& [first, second] : pairs) report.pairs.push_back(first + " -> " + second);
  return report;
}

}  // namespace qlab
