// The fp32 reference: LibTorch's own CPU kernels, every op, no quantization.
#include <qlab/backend.hpp>
#include <qlab/runtime.hpp>

#include <fmt/format.h>

namespace {

class CpuExecutable final : public qlab::Executable {
 public:
  explicit CpuExecutable(qlab::GraphModule module) : module_(std::move(module)) {
    module_->eval();
  }
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    return module_->forward(batch);
  }
  qlab::Mode mode() const override { return qlab::Mode::fp32; }
  std::string describe() const override {
    return fmt::format("LibTorch CPU fp32, {} threads", qlab::threads());
  }

 private:
  qlab::GraphModule module_;
};

class CpuBackend final : public qlab::Backend {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("threads", 0, "intra-op threads for training and inference (0: one per core)", 0, 1024);
    return s;
  }
  bool supports(qlab::Op, qlab::Mode mode) const override { return mode == qlab::Mode::fp32; }
  void configure(const qlab::Options& opts) override {
    qlab::set_threads(static_cast<int>(opts.get<std::int64_t>("threads")));
  }
  std::unique_ptr<qlab::Executable> lower(qlab::GraphModule module) const override {
    return std::make_unique<CpuExecutable>(std::move(module));
  }
};

}  // namespace

QLAB_PLUGIN(CpuBackend, "backend", "cpu", "fp32 reference on LibTorch's CPU kernels")
