// The fp32 reference: oneDNN primitives with prepacked weights where the
// build has oneDNN, else LibTorch's own CPU kernels, every op. Quantized
// models run here as a fake-quant simulation, labelled so.
#include <qlab/plugin/backend.hpp>
#include <qlab/runtime.hpp>

namespace {

class CpuBackend final : public qlab::Backend {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("threads", 0, "intra-op threads for training and inference (0: one per core)", 0,
              1024);
    s.string("fp32_kernels", "best",
             "fp32 kernels: best (oneDNN primitives where they lower the model, else LibTorch) "
             "or libtorch (LibTorch's CPU kernels op by op)",
             {"best", "libtorch"});
    return s;
  }
  bool supports(qlab::Op, qlab::Mode mode) const override {
    return mode == qlab::Mode::fp32 || mode == qlab::Mode::simulated;
  }
  void configure(const qlab::Options& opts) override {
    qlab::set_threads(static_cast<int>(opts.get<std::int64_t>("threads")));
    kernels_ = opts.get<std::string>("fp32_kernels") == "libtorch" ? qlab::FloatKernels::libtorch
                                                                   : qlab::FloatKernels::best;
  }
  std::unique_ptr<qlab::Executable> lower(qlab::GraphModule module) const override {
    return qlab::float_executable(std::move(module), kernels_);
  }
  std::unique_ptr<qlab::Executable> lower(
      std::shared_ptr<const qlab::QuantizedModel> model) const override {
    return qlab::simulated_executable(std::move(model),
                                      "the cpu backend has no int8 kernels; use onednn or qnnpack");
  }

 private:
  qlab::FloatKernels kernels_ = qlab::FloatKernels::best;
};

}  // namespace

QLAB_PLUGIN(CpuBackend, "backend", "cpu",
            "fp32 on oneDNN or LibTorch CPU kernels; quantized models as fake-quant simulation")
