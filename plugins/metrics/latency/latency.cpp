// Inference time of one batch of `[metrics] batch_size` test images: warm-up
// runs, then repeats for at least one second (20 to 2000 runs); median and
// 95th percentile per batch, and images per second at the median.
#include <qlab/metric.hpp>

#include <algorithm>
#include <chrono>

namespace {

class Latency final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override {
    return {"latency_ms", "latency_p95_ms", "throughput_ips"};
  }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    const auto& test = ctx.test_set();
    const std::int64_t n = std::min(ctx.batch_size(), test.size());
    if (n == 0) return;
    const auto batch = test.images.slice(0, 0, n).contiguous();
    auto& exe = ctx.executable();
    for (int i = 0; i < kWarmup; ++i) exe.run(batch);
    using clock = std::chrono::steady_clock;
    std::vector<double> ms;
    const auto start = clock::now();
    while (ms.size() < kMinRuns ||
           (clock::now() - start < std::chrono::seconds(1) && ms.size() < kMaxRuns)) {
      const auto t0 = clock::now();
      exe.run(batch);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    out["latency_ms"] = median;
    out["latency_p95_ms"] = ms[std::min(ms.size() - 1, ms.size() * 95 / 100)];
    out["throughput_ips"] = static_cast<double>(n) * 1000.0 / median;
  }

 private:
  static constexpr int kWarmup = 5;
  static constexpr std::size_t kMinRuns = 20, kMaxRuns = 2000;
};

}  // namespace

QLAB_PLUGIN(Latency, "metric", "latency", "median and p95 ms per batch, images/s")
