#include <qlab/error.hpp>
#include <qlab/quant/fake_quant.hpp>
#include <qlab/quant/ptq.hpp>

#include <cmath>

namespace qlab {
namespace {

// The straight-through estimator: the forward value of `q`, the gradient of `x`.
torch::Tensor straight_through(const torch::Tensor& x, const torch::Tensor& q) {
  return x + (q - x).detach();
}

// A per-tensor grid of `bits` with a fixed scale and zero point, fitted to [min, max].
QParams per_tensor(int bits, bool symmetric, const torch::Tensor& scale, torch::Tensor zero_point,
                   const torch::Tensor& min, const torch::Tensor& max) {
  QParams p;
  p.bits = bits;
  p.symmetric = symmetric;
  std::tie(p.qmin, p.qmax) = grid(bits, symmetric);
  p.scale = scale.detach().to(torch::kCPU, torch::kFloat64).reshape({1});
  p.zero_point = std::move(zero_point);
  p.min = min.detach().to(torch::kCPU, torch::kFloat64).reshape({1});
  p.max = max.detach().to(torch::kCPU, torch::kFloat64).reshape({1});
  return p;
}

// The layer whose weight is `w` on grid `p`.
QLayer on_grid(const torch::Tensor& w, const torch::Tensor& bias, QParams p) {
  QLayer l;
  l.codes = quantize_codes(w.detach(), p);
  l.weight = std::move(p);
  l.bias = bias;
  return l;
}

class MinMaxWeight final : public WeightFakeQuant {
 public:
  MinMaxWeight(int bits, bool per_channel) : bits_(bits), per_channel_(per_channel) {}
  torch::Tensor forward(const torch::Tensor& w) override {
    return fake_quantize(w, convert(w.detach(), {}).weight);
  }
  QLayer convert(const torch::Tensor& w, const torch::Tensor& bias) const override {
    return quantize_weight(w.detach(), bias, bits_, per_channel_);
  }

 private:
  int bits_;
  bool per_channel_;
};

class ObservedActivation final : public ActivationFakeQuant {
 public:
  ObservedActivation(int bits, bool reduce_range)
      : bits_(bits),
        reduce_range_(reduce_range && bits == 8),
        observer_(make_observer("moving_average")) {}
  torch::Tensor forward(const torch::Tensor& x, bool training) override {
    if (training && !frozen_) observer_->observe(x.detach());
    if (!observer_->seen()) return x;
    return fake_quantize(x, qparams());
  }
  QParams qparams() const override {
    return observer_->qparams(bits_, /*symmetric=*/false, reduce_range_);
  }
  void freeze() override { frozen_ = true; }

 private:
  int bits_;
  bool reduce_range_;
  bool frozen_ = false;
  std::unique_ptr<Observer> observer_;
};

class DorefaWeight final : public WeightFakeQuant {
 public:
  DorefaWeight(int bits, double scale) : bits_(bits), scale_(scale) {}
  torch::Tensor forward(const torch::Tensor& w) override {
    return dorefa_weight(w, bits_) * scale_;
  }
  QLayer convert(const torch::Tensor& w_in, const torch::Tensor& bias) const override {
    const auto w = w_in.detach();
    if (bits_ == 1) return quantize_weight(w, bias, 1, /*per_channel=*/false);  // ±mean|w|, binary
    const auto q = dorefa_weight(w, bits_) * scale_;
    // DoReFa's 2^k levels are the signed k-bit grid shifted by half a step:
    // a zero point of -1/2, exact at every width (and so never int8).
    const double levels = std::ldexp(1.0, bits_) - 1;
    return on_grid(q, bias,
                   per_tensor(bits_, true, torch::full({1}, 2.0 * scale_ / levels, torch::kFloat64),
                              torch::full({1}, -0.5, torch::kFloat64), q.min(), q.max()));
  }

 private:
  int bits_;
  double scale_;
};

class DorefaActivation final : public ActivationFakeQuant {
 public:
  explicit DorefaActivation(int bits) : bits_(bits) {}
  torch::Tensor forward(const torch::Tensor& x, bool) override {
    return dorefa_activation(x, bits_);
  }
  QParams qparams() const override {
    return qparams_from_range(torch::zeros({1}), torch::ones({1}), bits_, /*symmetric=*/false);
  }

 private:
  int bits_;
};

class LsqWeight final : public WeightFakeQuant {
 public:
  LsqWeight(int bits, const torch::Tensor& initial) : bits_(bits) {
    std::tie(qmin_, qmax_) = grid(bits, /*symmetric=*/true);
    step_ = torch::full({1}, lsq_initial_step(initial, qmax_), initial.options())
                .set_requires_grad(true);
    grad_scale_ = 1.0 / std::sqrt(static_cast<double>(initial.numel() * qmax_));
  }
  torch::Tensor forward(const torch::Tensor& w) override {
    return lsq_fake_quantize(w, step_, qmin_, qmax_, grad_scale_);
  }
  QLayer convert(const torch::Tensor& w, const torch::Tensor& bias) const override {
    return on_grid(
        w, bias,
        per_tensor(bits_, true, step_, torch::zeros({1}, torch::kInt64), w.min(), w.max()));
  }
  std::vector<torch::Tensor> parameters() override { return {step_}; }

 private:
  int bits_;
  std::int64_t qmin_ = 0, qmax_ = 0;
  torch::Tensor step_;
  double grad_scale_ = 1;
};

class LsqActivation final : public ActivationFakeQuant {
 public:
  LsqActivation(int bits, bool reduce_range)
      : bits_(bits), reduce_range_(reduce_range && bits == 8) {}
  torch::Tensor forward(const torch::Tensor& x, bool) override {
    if (!step_.defined()) {  // the first batch fixes signedness and the initial step
      signed_ = x.min().item<double>() < 0;
      std::tie(qmin_, qmax_) = grid(bits_, signed_, reduce_range_);
      step_ = torch::full({1}, lsq_initial_step(x.detach(), qmax_), x.options())
                  .set_requires_grad(true);
      grad_scale_ = 1.0 / std::sqrt(static_cast<double>(x[0].numel() * qmax_));
    }
    return lsq_fake_quantize(x, step_, qmin_, qmax_, grad_scale_);
  }
  QParams qparams() const override {
    QLAB_CHECK(step_.defined(), "LSQ activation step used before any batch was seen");
    // An int8 tensor holds the signed grid as the unsigned one with zero point 2^(b-1).
    QParams p =
        per_tensor(bits_, false, step_, torch::full({1}, signed_ ? -qmin_ : 0, torch::kInt64),
                   step_ * static_cast<double>(qmin_), step_ * static_cast<double>(qmax_));
    p.qmin = 0;
    p.qmax = qmax_ - qmin_;  // 7 bits under reduce_range
    return p;
  }
  std::vector<torch::Tensor> parameters() override { return {step_}; }

 private:
  int bits_;
  bool reduce_range_;
  bool signed_ = false;
  std::int64_t qmin_ = 0, qmax_ = 0;
  torch::Tensor step_;
  double grad_scale_ = 1;
};

}  // namespace

std::unique_ptr<WeightFakeQuant> minmax_weight(int bits, bool per_channel) {
  return std::make_unique<MinMaxWeight>(bits, per_channel);
}

std::unique_ptr<ActivationFakeQuant> observed_activation(int bits, bool reduce_range) {
  return std::make_unique<ObservedActivation>(bits, reduce_range);
}

torch::Tensor dorefa_weight(const torch::Tensor& w, int bits) {
  if (bits == 1) {
    const auto mean = w.detach().abs().mean();
    return straight_through(w, torch::where(w.detach() >= 0, mean, -mean));
  }
  const double levels = std::ldexp(1.0, bits) - 1;
  const auto t = torch::tanh(w);
  const auto u = t / (2 * t.abs().max()) + 0.5;
  return 2 * straight_through(u, torch::round(u.detach() * levels) / levels) - 1;
}

torch::Tensor dorefa_activation(const torch::Tensor& x, int bits) {
  const double levels = std::ldexp(1.0, bits) - 1;
  const auto c = torch::clamp(x, 0.0, 1.0);
  return straight_through(c, torch::round(c.detach() * levels) / levels);
}

std::unique_ptr<WeightFakeQuant> dorefa_weight_quant(int bits, const torch::Tensor& initial,
                                                     bool keep_scale) {
  const double scale = keep_scale && bits > 1 ? initial.detach().abs().max().item<double>() : 1.0;
  return std::make_unique<DorefaWeight>(bits, scale);
}

std::unique_ptr<ActivationFakeQuant> dorefa_activation_quant(int bits) {
  return std::make_unique<DorefaActivation>(bits);
}

torch::Tensor lsq_fake_quantize(const torch::Tensor& x, const torch::Tensor& step,
                                std::int64_t qmin, std::int64_t qmax, double grad_scale) {
  // ATen's learnable fake-quant computes LSQ's gradients; the zero point is
  // fixed at 0 (it takes no gradient).
  const auto zero = torch::zeros({1}, x.options());
  return at::_fake_quantize_learnable_per_tensor_affine(x, step.abs().clamp_min(1e-9), zero, qmin,
                                                        qmax, grad_scale);
}

double lsq_initial_step(const torch::Tensor& v, std::int64_t qmax) {
  return std::max(
      2.0 * v.detach().abs().mean().item<double>() / std::sqrt(static_cast<double>(qmax)), 1e-8);
}

std::unique_ptr<WeightFakeQuant> lsq_weight(int bits, const torch::Tensor& initial) {
  return std::make_unique<LsqWeight>(bits, initial);
}

std::unique_ptr<ActivationFakeQuant> lsq_activation(int bits, bool reduce_range) {
  return std::make_unique<LsqActivation>(bits, reduce_range);
}

}  // namespace qlab
