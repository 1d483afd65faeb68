#include <qlab/quant/ptq_methods.hpp>

#include <fmt/format.h>

#include <limits>

namespace qlab {
namespace {

// Candidate clipping ranges, as fractions of a channel's largest |w|: past
// 1.0 too, because the signed grid's top positive level is one step short
// of its bottom one (at 2 bits, +1 against -2).
constexpr int kFirst = 10, kLast = 150, kStep = 2;  // percent

// The squared error of `y` against `target`, summed per output channel
// (dim 1), or in one when the weight has one scale.
torch::Tensor channel_error(const torch::Tensor& y, const torch::Tensor& target, bool per_channel) {
  const auto e = (y - target).square();
  if (!per_channel) return e.sum().reshape({1});
  return e.transpose(0, 1).reshape({e.size(1), -1}).sum(1);
}

}  // namespace

std::vector<std::string> search_weight_ranges(QuantizedModel& q, const torch::Tensor& images) {
  std::vector<std::string> notes;
  int searched = 0;
  double clip_sum = 0;
  std::int64_t channels = 0;
  walk_two_streams(q, images, [&](const Node& node, QLayer& l, const Slices& x, const Slices& xq) {
    if (l.weight.binary() || l.weight.zero_point.is_floating_point()) {
      notes.push_back(node.name + ": its grid's scale is fixed (binary or half-step)");
      return;
    }
    torch::NoGradGuard no_grad;
    const auto& m = q.float_module;
    const auto w = layer_parameter(m, node.name, "weight");
    Slices target;
    for (const auto& part : x) target.push_back(layer_output(m, node, part, w));
    const bool per_channel = l.weight.per_channel();
    const auto amax = per_channel ? w.abs().reshape({w.size(0), -1}).amax(1) : w.abs().max();
    auto best_error = torch::full({per_channel ? w.size(0) : 1},
                                  std::numeric_limits<double>::infinity(), torch::kFloat64);
    auto best_ratio = torch::ones_like(best_error);
    for (int k = kFirst; k <= kLast; k += kStep) {
      const double ratio = k / 100.0;
      const QParams p = with_clip(l.weight, amax.reshape({-1}) * ratio);
      const auto wq = dequantize_codes(quantize_codes(w, p), p).to(w.dtype());
      auto error = torch::zeros_like(best_error);
      for (std::size_t s = 0; s < xq.size(); ++s)
        error += channel_error(layer_output(m, node, xq[s], wq), target[s], per_channel)
                     .to(torch::kFloat64);
      const auto better = error < best_error;
      best_error = torch::where(better, error, best_error);
      best_ratio = torch::where(better, torch::full_like(best_ratio, ratio), best_ratio);
    }
    l.weight = with_clip(l.weight, amax.reshape({-1}).to(torch::kFloat64) * best_ratio);
    l.codes = quantize_codes(w, l.weight);
    ++searched;
    clip_sum += best_ratio.sum().item<double>();
    channels += best_ratio.numel();
  });
  notes.insert(notes.begin(),
               fmt::format("sequential MSE: each weight scale of {} layer(s) chosen among {} "
                           "clipping ranges by the layer's output error on {} calibration images; "
                           "mean clip {:.2f} of max|w|",
                           searched, (kLast - kFirst) / kStep + 1, images.size(0),
                           clip_sum / std::max<std::int64_t>(1, channels)));
  return notes;
}

}  // namespace qlab
