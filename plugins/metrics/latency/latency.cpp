// Inference time of one batch of `[metrics] batch_size` test images: warm-up
// runs, then repeats for at least one second (20 to 2000 runs); median and
// 95th percentile per batch, and images per second at the median.
//
// For a quantized model the fp32 reference runs interleaved with it, in
// blocks of a few runs each (A A A A A B B B B B ...), and `speedup_vs_fp32`
// is the median over block pairs of the ratio of their medians: the machine's
// drift hits both sides alike, so the ratio holds on a noisy host, while
// blocks keep each model's caches warm as in a deployment (alternating
// single runs cost LeNet 20% here).
#include <qlab/plugin/metric.hpp>

#include <algorithm>
#include <chrono>

namespace {

using Clock = std::chrono::steady_clock;

double time_ms(qlab::Executable& exe, const torch::Tensor& batch) {
  const auto t0 = Clock::now();
  exe.run(batch);
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class Latency final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override {
    return {"latency_ms", "latency_p95_ms", "throughput_ips", "speedup_vs_fp32"};
  }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    const auto& test = ctx.test_set();
    const std::int64_t n = std::min(ctx.batch_size(), test.size());
    if (n == 0) return;
    const auto batch = test.images.slice(0, 0, n).contiguous();
    auto& exe = ctx.executable();
    auto* ref = ctx.reference();
    for (int i = 0; i < kWarmup; ++i) {
      exe.run(batch);
      if (ref) ref->run(batch);
    }
    std::vector<double> ms, ratios;
    const auto start = Clock::now();
    while (ms.size() < kMinRuns || (Clock::now() - start < kMinTime && ms.size() < kMaxRuns)) {
      std::vector<double> own, base;
      for (int i = 0; i < kBlock; ++i) own.push_back(time_ms(exe, batch));
      if (ref) {
        for (int i = 0; i < kBlock; ++i) base.push_back(time_ms(*ref, batch));
        ratios.push_back(median(base) / median(own));
      }
      ms.insert(ms.end(), own.begin(), own.end());
    }
    const double med = median(ms);
    std::sort(ms.begin(), ms.end());
    out["latency_ms"] = med;
    out["latency_p95_ms"] = ms[std::min(ms.size() - 1, ms.size() * 95 / 100)];
    out["throughput_ips"] = static_cast<double>(n) * 1000.0 / med;
    if (ref) out["speedup_vs_fp32"] = median(ratios);
  }

 private:
  static constexpr int kWarmup = 5;
  static constexpr int kBlock = 5;
  static constexpr std::size_t kMinRuns = 20, kMaxRuns = 2000;
  static constexpr std::chrono::seconds kMinTime{1};
};

}  // namespace

QLAB_PLUGIN(Latency, "metric", "latency",
            "median and p95 ms per batch, images/s, A/B speed-up vs fp32")
