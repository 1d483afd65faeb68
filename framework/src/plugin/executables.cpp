#include <qlab/plugin/backend.hpp>
#include <qlab/runtime.hpp>

#include "plugin/onednn_float.hpp"

#include <fmt/format.h>

namespace qlab {
namespace {

class Simulated final : public Executable {
 public:
  Simulated(std::shared_ptr<const QuantizedModel> model, std::string reason)
      : model_(std::move(model)),
        weights_(model_->dequantized_module()),
        reason_(std::move(reason)) {}
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    return simulate(*model_, weights_, batch);
  }
  Mode mode() const override { return Mode::simulated; }
  std::string describe() const override {
    return fmt::format("fake-quant simulation in fp32 on LibTorch CPU ({}): no speed-up expected",
                       reason_);
  }

 private:
  std::shared_ptr<const QuantizedModel> model_;
  GraphModule weights_;
  std::string reason_;
};

// LibTorch's kernels op by op, on its own copy of the module with 4-D
// weights channels-last: LibTorch then runs oneDNN's convolutions in their
// native layout, without reordering weights and activations at every call
// (MNIST CNN's batch of 64: 15 -> 8.6 ms in PyTorch on the same LibTorch).
class Float final : public Executable {
 public:
  Float(const GraphModule& module, std::string why_not_onednn)
      : module_(clone_module(module)), why_not_onednn_(std::move(why_not_onednn)) {
    torch::NoGradGuard no_grad;
    module_->eval();
    for (auto& p : module_->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    return module_->forward(batch);
  }
  Mode mode() const override { return Mode::fp32; }
  std::string describe() const override {
    return fmt::format("fp32 on LibTorch CPU kernels, {} threads{}", threads(),
                       why_not_onednn_.empty() ? "" : " (" + why_not_onednn_ + ")");
  }

 private:
  GraphModule module_;
  std::string why_not_onednn_;
};

}  // namespace

std::unique_ptr<Executable> float_executable(GraphModule module, FloatKernels kernels) {
  std::string why;
  if (kernels == FloatKernels::best)
    if (auto exe = onednn_float_executable(module, why)) return exe;
  return std::make_unique<Float>(module, why);
}

std::unique_ptr<Executable> simulated_executable(std::shared_ptr<const QuantizedModel> model,
                                                 std::string reason) {
  return std::make_unique<Simulated>(std::move(model), std::move(reason));
}

}  // namespace qlab
