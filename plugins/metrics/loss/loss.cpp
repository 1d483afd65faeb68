// The model's own loss, averaged per test sample, on the backend's outputs.
#include <qlab/plugin/metric.hpp>

namespace {

class Loss final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"loss"}; }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    const auto& outputs = ctx.test_outputs();
    const auto& test = ctx.test_set();
    const std::int64_t n = test.size();
    if (n == 0) return;
    torch::NoGradGuard no_grad;
    constexpr std::int64_t kChunk = 1000;
    double total = 0;
    for (std::int64_t i = 0; i < n; i += kChunk) {
      const std::int64_t end = std::min(n, i + kChunk);
      std::vector<torch::Tensor> part;
      for (const auto& o : outputs) part.push_back(o.slice(0, i, end));
      total += ctx.model()
                   .loss(part, test.images.slice(0, i, end), test.labels.slice(0, i, end))
                   .item<double>() *
               static_cast<double>(end - i);
    }
    out["loss"] = total / static_cast<double>(n);
  }
};

}  // namespace

QLAB_PLUGIN(Loss, "metric", "loss", "the model's loss, mean per test sample")
