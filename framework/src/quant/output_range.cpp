#include <qlab/quant/ptq.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <fmt/format.h>

namespace qlab {
namespace {

// Candidate ends, as fractions of the observed range's: the top from 0.3x
// to 1x of the largest output, the bottom from 0 to 1x of the smallest.
constexpr int kSteps = 20;

// The cross-entropy of the float outputs' softmax against the quantized
// outputs' log-softmax, averaged over the sample.
double cross_entropy(const torch::Tensor& logits, const torch::Tensor& quantized) {
  return -(torch::softmax(logits, 1) * torch::log_softmax(quantized, 1))
              .sum(1)
              .mean()
              .item<double>();
}

}  // namespace

std::vector<std::string> search_output_ranges(QuantizedModel& q, const torch::Tensor& images) {
  std::vector<std::string> notes;
  const Graph& g = q.graph();
  const auto outputs = g.output_nodes();
  std::vector<Slices> float_out(outputs.size());
  {
    torch::NoGradGuard no_grad;
    for (std::int64_t s = 0; s < images.size(0); s += 128) {
      const auto out = q.float_module->forward(images.slice(0, s, s + 128));
      for (std::size_t k = 0; k < outputs.size(); ++k) float_out[k].push_back(out.at(k));
    }
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    auto it = q.activations.find(qparams_source(g, outputs[k]));
    const auto logits = torch::cat(float_out[k]);
    if (it == q.activations.end() || logits.dim() != 2) {
      notes.push_back(outputs[k] + ": not quantized logits (one row of scores per image)");
      continue;
    }
    QParams& p = it->second;
    // An engine that needs 7-bit activations keeps them (calibrate's reduce_range).
    const bool reduced = p.bits > 1 && p.qmax - p.qmin < (std::int64_t{1} << p.bits) - 1;
    const double lo = p.min.item<double>(), hi = p.max.item<double>();
    double best = cross_entropy(logits, fake_quantize(logits, p));
    const double observed = best;
    std::pair<double, double> chosen{lo, hi};
    QParams grid = p;
    for (int a = 0; a <= kSteps; ++a)
      for (int b = 0; b <= kSteps; ++b) {
        const double top = hi * (0.3 + 0.7 * b / kSteps), bottom = lo * a / kSteps;
        QParams c = qparams_from_range(torch::tensor({bottom}), torch::tensor({top}), p.bits,
                                       p.symmetric, p.axis, reduced);
        const double e = cross_entropy(logits, fake_quantize(logits, c));
        if (e < best) best = e, chosen = {bottom, top}, grid = std::move(c);
      }
    grid.min = p.min, grid.max = p.max;  // the observed range, for the record
    p = std::move(grid);
    notes.push_back(fmt::format(
        "output range: {} on [{:.3g}, {:.3g}] (observed [{:.3g}, {:.3g}]), chosen by the "
        "cross-entropy against the float outputs on {} calibration images: {:.4f} (observed "
        "range: {:.4f})",
        outputs[k], chosen.first, chosen.second, lo, hi, images.size(0), best, observed));
  }
  return notes;
}

}  // namespace qlab
