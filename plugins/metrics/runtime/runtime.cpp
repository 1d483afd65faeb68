// Time to run the whole test set, in batches of `[metrics] batch_size`,
// averaged over three runs after one warm-up run: seed 000's "average
// runtime". Data loading is outside the clock; the images are in memory.
#include <qlab/plugin/metric.hpp>

#include <chrono>

namespace {

class Runtime final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"test_set_ms", "test_set_runs"}; }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    const auto& images = ctx.test_set().images;
    const std::int64_t n = images.size(0), batch = ctx.batch_size();
    if (n == 0) return;
    std::vector<torch::Tensor> batches;
    for (std::int64_t i = 0; i < n; i += batch)
      batches.push_back(images.slice(0, i, std::min(n, i + batch)).contiguous());
    auto& exe = ctx.executable();
    double total_ms = 0;
    for (int run = 0; run <= kRuns; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& b : batches) exe.run(b);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (run > 0) total_ms += ms;  // run 0 warms caches and lazily packed weights
    }
    out["test_set_ms"] = total_ms / kRuns;
    out["test_set_runs"] = kRuns;
  }

 private:
  static constexpr int kRuns = 3;
};

}  // namespace

QLAB_PLUGIN(Runtime, "metric", "runtime",
            "ms to run the whole test set in batches, mean of 3 runs after a warm-up")
