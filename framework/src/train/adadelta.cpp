#include "train/adadelta.hpp"

namespace qlab {

Adadelta::Adadelta(std::vector<torch::Tensor> params, AdadeltaOptions defaults)
    : Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                std::make_unique<AdadeltaOptions>(defaults)) {}

torch::Tensor Adadelta::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const AdadeltaOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto grad = p.grad();
      if (o.weight_decay() != 0) grad = grad.add(p, o.weight_decay());
      auto& st = state_by_param_[p.unsafeGetTensorImpl()];
      if (!st.square_avg.defined()) {
        st.square_avg = torch::zeros_like(p);
        st.acc_delta = torch::zeros_like(p);
      }
      st.square_avg.mul_(o.rho()).addcmul_(grad, grad, 1 - o.rho());
      auto std = st.square_avg.add(o.eps()).sqrt_();
      auto delta = st.acc_delta.add(o.eps()).sqrt_().div_(std).mul_(grad);
      st.acc_delta.mul_(o.rho()).addcmul_(delta, delta, 1 - o.rho());
      p.add_(delta, -o.lr());
    }
  }
  return loss;
}

void Adadelta::save(torch::serialize::OutputArchive& archive) const {
  std::int64_t i = 0;
  for (const auto& group : param_groups())
    for (const auto& p : group.params()) {
      auto it = state_by_param_.find(p.unsafeGetTensorImpl());
      if (it != state_by_param_.end()) {
        archive.write("square_avg." + std::to_string(i), it->second.square_avg, /*is_buffer=*/true);
        archive.write("acc_delta." + std::to_string(i), it->second.acc_delta, /*is_buffer=*/true);
      }
      ++i;
    }
}

void Adadelta::load(torch::serialize::InputArchive& archive) {
  std::int64_t i = 0;
  for (auto& group : param_groups())
    for (auto& p : group.params()) {
      State st;
      if (archive.try_read("square_avg." + std::to_string(i), st.square_avg, /*is_buffer=*/true) &&
          archive.try_read("acc_delta." + std::to_string(i), st.acc_delta, /*is_buffer=*/true))
        state_by_param_[p.unsafeGetTensorImpl()] = std::move(st);
      ++i;
    }
}

}  // namespace qlab
