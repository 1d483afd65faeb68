#pragma once
// Adadelta (Zeiler 2012), which LibTorch's C++ API lacks; the PyTorch MNIST
// example (seed 000) trains with it. Same update rule and defaults as
// torch.optim.Adadelta.
#include <torch/torch.h>

#include <unordered_map>

namespace qlab {

struct AdadeltaOptions : public torch::optim::OptimizerCloneableOptions<AdadeltaOptions> {
  explicit AdadeltaOptions(double lr = 1.0) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, rho) = 0.9;
  TORCH_ARG(double, eps) = 1e-6;
  TORCH_ARG(double, weight_decay) = 0;
  double get_lr() const override { return lr_; }
  void set_lr(const double lr) override { lr_ = lr; }
};

class Adadelta : public torch::optim::Optimizer {
 public:
  Adadelta(std::vector<torch::Tensor> params, AdadeltaOptions defaults);
  torch::Tensor step(LossClosure closure = nullptr) override;
  /// The running averages, by parameter position: a resumed run continues
  /// exactly where the interrupted one stopped.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  struct State {
    torch::Tensor square_avg, acc_delta;
  };
  std::unordered_map<const void*, State> state_by_param_;
};

}  // namespace qlab
