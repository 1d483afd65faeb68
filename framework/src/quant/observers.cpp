// Observers: what range of a tensor to quantize, learned from what it held.
#include <qlab/error.hpp>
#include <qlab/quant/quant.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>

namespace qlab {
namespace {

// Per-channel views flatten everything but `axis`.
std::pair<torch::Tensor, torch::Tensor> minmax_of(const torch::Tensor& x, int axis) {
  const auto d = x.detach().to(torch::kFloat32);
  if (axis < 0) return {d.min().reshape({1}), d.max().reshape({1})};
  const auto flat = d.transpose(0, axis).reshape({d.size(axis), -1});
  return {flat.amin(1), flat.amax(1)};
}

class MinMax : public Observer {
 public:
  explicit MinMax(int axis) : Observer(axis) {}
  void observe(const torch::Tensor& x) override {
    auto [lo, hi] = minmax_of(x, axis_);
    if (!seen_) {
      min_ = lo;
      max_ = hi;
    } else {
      min_ = torch::min(min_, lo);
      max_ = torch::max(max_, hi);
    }
    seen_ = true;
  }
  std::pair<torch::Tensor, torch::Tensor> range(int, bool) const override { return {min_, max_}; }

 protected:
  torch::Tensor min_, max_;
};

class MovingAverage : public MinMax {
 public:
  explicit MovingAverage(int axis) : MinMax(axis) {}
  void observe(const torch::Tensor& x) override {
    if (!seen_) return MinMax::observe(x);
    auto [lo, hi] = minmax_of(x, axis_);
    min_ = min_ + kFactor * (lo - min_);
    max_ = max_ + kFactor * (hi - max_);
  }

 private:
  static constexpr double kFactor = 0.01;
};

// A fixed number of bins over a range that grows as data arrives; when it
// grows, old counts move to the new bin holding their old bin's centre.
class Histogram : public Observer {
 public:
  Histogram(bool mse, double percentile) : Observer(-1), mse_(mse), percentile_(percentile) {}

  void observe(const torch::Tensor& x) override {
    const auto d = x.detach().to(torch::kFloat32).reshape({-1});
    if (d.numel() == 0) return;
    const double lo = d.min().item<double>(), hi = d.max().item<double>();
    if (!seen_) {
      lo_ = lo;
      hi_ = hi > lo ? hi : lo + 1e-8;
      counts_.assign(kBins, 0.0);
    } else if (lo < lo_ || hi > hi_) {
      rebin(std::min(lo, lo_), std::max(hi, hi_));
    }
    const auto h = torch::histc(d, kBins, lo_, hi_).to(torch::kFloat64).contiguous();
    const double* p = h.data_ptr<double>();
    for (int i = 0; i < kBins; ++i) counts_[static_cast<std::size_t>(i)] += p[i];
    seen_ = true;
  }

  std::pair<torch::Tensor, torch::Tensor> range(int bits, bool symmetric) const override {
    QLAB_CHECK(seen_, "histogram observer saw no data");
    auto [lo, hi] = mse_ ? mse_range(bits, symmetric) : percentile_range();
    return {torch::tensor({lo}, torch::kFloat64), torch::tensor({hi}, torch::kFloat64)};
  }

 private:
  static constexpr int kBins = 2048;

  double width() const { return (hi_ - lo_) / kBins; }
  double centre(int i) const { return lo_ + (i + 0.5) * width(); }

  void rebin(double lo, double hi) {
    std::vector<double> moved(kBins, 0.0);
    const double w = (hi - lo) / kBins;
    for (int i = 0; i < kBins; ++i) {
      const int j = std::min(kBins - 1, static_cast<int>((centre(i) - lo) / w));
      moved[static_cast<std::size_t>(j)] += counts_[static_cast<std::size_t>(i)];
    }
    counts_ = std::move(moved);
    lo_ = lo;
    hi_ = hi;
  }

  std::pair<double, double> percentile_range() const {
    double total = 0;
    for (double c : counts_) total += c;
    const double tail = total * (1.0 - percentile_ / 100.0) / 2.0;
    int a = 0, b = kBins - 1;
    for (double acc = 0; a < kBins - 1 && acc + counts_[static_cast<std::size_t>(a)] <= tail; ++a)
      acc += counts_[static_cast<std::size_t>(a)];
    for (double acc = 0; b > a && acc + counts_[static_cast<std::size_t>(b)] <= tail; --b)
      acc += counts_[static_cast<std::size_t>(b)];
    return {lo_ + a * width(), lo_ + (b + 1) * width()};
  }

  // Expected squared error of quantizing the histogram to [a, b] with
  // 2^bits levels: clipping error outside, uniform rounding noise inside.
  // Prefix sums of n, n*c and n*c^2 make each candidate O(1).
  std::pair<double, double> mse_range(int bits, bool symmetric) const {
    std::vector<double> s0(kBins + 1, 0), s1(kBins + 1, 0), s2(kBins + 1, 0);
    for (int i = 0; i < kBins; ++i) {
      const double n = counts_[static_cast<std::size_t>(i)], c = centre(i);
      s0[i + 1] = s0[i] + n;
      s1[i + 1] = s1[i] + n * c;
      s2[i + 1] = s2[i] + n * c * c;
    }
    const double levels = std::pow(2.0, bits) - 1;
    auto error = [&](double a, double b) {
      // Bins whose centre lies below a, or above b, are clipped.
      const int ia = std::clamp(static_cast<int>(std::ceil((a - lo_) / width() - 0.5)), 0, kBins);
      const int ib =
          std::clamp(static_cast<int>(std::floor((b - lo_) / width() - 0.5)) + 1, ia, kBins);
      const double below = s2[ia] - 2 * a * s1[ia] + a * a * s0[ia];
      const double n_above = s0[kBins] - s0[ib], c_above = s1[kBins] - s1[ib],
                   q_above = s2[kBins] - s2[ib];
      const double above = q_above - 2 * b * c_above + b * b * n_above;
      const double step = (b - a) / levels;
      return below + above + (s0[ib] - s0[ia]) * step * step / 12.0;
    };
    double best_a = std::min(lo_, 0.0), best_b = std::max(hi_, 0.0);
    double best = error(best_a, best_b);
    constexpr int kSteps = 256;
    if (symmetric) {
      const double amax = std::max(std::abs(lo_), std::abs(hi_));
      for (int k = 1; k <= kSteps; ++k) {
        const double t = amax * k / kSteps;
        const double e = error(-t, t);
        if (e < best) best = e, best_a = -t, best_b = t;
      }
    } else {
      const double a0 = std::min(lo_, 0.0), b0 = std::max(hi_, 0.0);
      for (int i = 0; i <= kSteps; ++i) {
        const double a = a0 * i / kSteps;  // shrinks towards 0
        for (int j = 1; j <= kSteps; ++j) {
          const double b = b0 * j / kSteps;
          if (b - a <= 0) continue;
          const double e = error(a, b);
          if (e < best) best = e, best_a = a, best_b = b;
        }
      }
    }
    return {best_a, best_b};
  }

  bool mse_;
  double percentile_;
  double lo_ = 0, hi_ = 0;
  std::vector<double> counts_;
};

}  // namespace

QParams Observer::qparams(int bits, bool symmetric, bool reduce_range) const {
  QLAB_CHECK(seen_, "observer saw no data");
  auto [lo, hi] = range(bits, symmetric);
  return qparams_from_range(lo, hi, bits, symmetric, axis_, reduce_range);
}

const std::vector<std::string>& observer_kinds() {
  static const std::vector<std::string> kinds{"minmax", "moving_average", "histogram",
                                              "percentile"};
  return kinds;
}

std::unique_ptr<Observer> make_observer(const std::string& kind, int axis, double percentile) {
  if (kind == "minmax") return std::make_unique<MinMax>(axis);
  if (kind == "moving_average") return std::make_unique<MovingAverage>(axis);
  if ((kind == "histogram" || kind == "percentile") && axis >= 0)
    throw Error(
        fmt::format("observer '{}' is per tensor only; use minmax for per-channel weights", kind));
  if (kind == "histogram") return std::make_unique<Histogram>(true, percentile);
  if (kind == "percentile") return std::make_unique<Histogram>(false, percentile);
  throw Error(
      fmt::format("unknown observer '{}' (known: {})", kind, fmt::join(observer_kinds(), ", ")));
}

}  // namespace qlab
