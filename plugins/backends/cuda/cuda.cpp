// NVIDIA GPUs through LibTorch's CUDA kernels: baselines train on the
// device, float models run there in fp32, fp16 or bf16 (`precision`), and
// static models on int8 grids run their layers on int8 matrix products
// (at::_int_mm, LibTorch >= 2.1; int_mm.hpp). Other quantized models run
// there as fake-quant simulation, labelled so. It builds against every
// LibTorch; where LibTorch has no CUDA (Debian's) or no GPU is visible, it
// is unavailable and says which.
#include "int_mm.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/backend.hpp>
#include <qlab/quant/qmodel.hpp>
#include <qlab/runtime.hpp>

#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/version.h>

#ifdef QLAB_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace {

struct Precision {
  torch::ScalarType dtype;
  qlab::Mode mode;
};

Precision precision(const std::string& name) {
  if (name == "fp16") return {torch::kFloat16, qlab::Mode::fp16};
  if (name == "bf16") return {torch::kBFloat16, qlab::Mode::bf16};
  return {torch::kFloat32, qlab::Mode::fp32};
}

// Inputs go to the device, outputs come back to the host as fp32. Copying
// them back waits for the device, so a timed run() covers the whole
// inference, transfers included.
class OnDevice : public qlab::Executable {
 public:
  explicit OnDevice(torch::Device device) : device_(device) {}
  std::int64_t device_peak_bytes() const override {
#ifdef QLAB_HAVE_CUDA
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    return stats.allocated_bytes[0].peak;  // [0]: all pools together
#else
    return -1;
#endif
  }
  void reset_device_peak() override {
#ifdef QLAB_HAVE_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
  }

 protected:
  static std::vector<torch::Tensor> to_host(std::vector<torch::Tensor> outputs) {
    for (auto& o : outputs) o = o.to(torch::kCPU).to(torch::kFloat32);
    return outputs;
  }
  torch::Device device_;
};

class Float final : public OnDevice {
 public:
  Float(qlab::GraphModule module, torch::Device device, Precision p)
      : OnDevice(device), module_(qlab::clone_module(module)), precision_(p) {
    module_->to(device, p.dtype);
    module_->eval();
  }
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    return to_host(module_->forward(batch.to(device_, precision_.dtype)));
  }
  qlab::Mode mode() const override { return precision_.mode; }
  std::string describe() const override {
    return fmt::format("{} on CUDA device {} (LibTorch's CUDA kernels)",
                       qlab::to_string(precision_.mode), device_.index());
  }

 private:
  qlab::GraphModule module_;
  Precision precision_;
};

class Simulated final : public OnDevice {
 public:
  Simulated(std::shared_ptr<const qlab::QuantizedModel> model, torch::Device device,
            std::string why)
      : OnDevice(device),
        model_(std::move(model)),
        weights_(model_->dequantized_module()),
        why_(std::move(why)) {
    weights_->to(device);
  }
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    return to_host(qlab::simulate(*model_, weights_, batch.to(device_)));
  }
  qlab::Mode mode() const override { return qlab::Mode::simulated; }
  std::string describe() const override {
    return fmt::format("fake-quant simulation in fp32 on CUDA device {}: {}, so no int8 speed-up",
                       device_.index(), why_);
  }

 private:
  std::shared_ptr<const qlab::QuantizedModel> model_;
  qlab::GraphModule weights_;
  std::string why_;
};

// int_mm_executable with the device's memory statistics.
class Int8 final : public OnDevice {
 public:
  Int8(std::shared_ptr<const qlab::QuantizedModel> model, torch::Device device)
      : OnDevice(device), inner_(qlab::cuda::int_mm_executable(std::move(model), device)) {}
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    return to_host(inner_->run(batch));
  }
  qlab::Mode mode() const override { return inner_->mode(); }
  std::string describe() const override { return inner_->describe(); }
  std::vector<std::string> lowered() const override { return inner_->lowered(); }

 private:
  std::unique_ptr<qlab::Executable> inner_;
};

// Why a quantized model cannot run on int_mm; "" when it can.
std::string int_mm_blocker(const qlab::QuantizedModel& model) {
  if (!qlab::cuda::has_int_mm())
    return fmt::format("LibTorch {} has no at::_int_mm (2.1 and later do)", TORCH_VERSION);
  if (model.scheme != qlab::Scheme::static_)
    return "dynamic quantization has no int8 lowering on the GPU";
  if (!model.int8()) {
    const auto why = model.int8_blockers();
    return why.empty() ? "it has no quantized layers"
                       : fmt::format("{}: {}", why.begin()->first, why.begin()->second);
  }
  return "";
}

class CudaBackend final : public qlab::Backend {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.string("precision", "fp32", "float inference precision on the GPU", {"fp32", "fp16", "bf16"})
        .integer("device", 0, "CUDA device index", 0, 63)
        .integer("threads", 0, "intra-op threads for the host side (0: one per core)", 0, 1024);
    return s;
  }
  qlab::Availability availability() const override {
    if (!at::hasCUDA())
      return {
          false,
          "this LibTorch has no CUDA (Debian's libtorch-dev is CPU-only); build qlab against the "
          "official LibTorch with CUDA (docs/building.md)"};
    if (!torch::cuda::is_available()) return {false, "LibTorch has CUDA, but no GPU is visible"};
    return {};
  }
  bool supports(qlab::Op, qlab::Mode mode) const override {
    return mode != qlab::Mode::int8 || qlab::cuda::has_int_mm();
  }
  torch::Device device() const override { return {torch::kCUDA, device_}; }
  void configure(const qlab::Options& opts) override {
    qlab::set_threads(static_cast<int>(opts.get<std::int64_t>("threads")));
    device_ = static_cast<c10::DeviceIndex>(opts.get<std::int64_t>("device"));
    precision_ = precision(opts.get<std::string>("precision"));
    // fp32 means fp32: no TF32 in convolutions and matrix products, which
    // LibTorch otherwise allows on Ampere and later.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
    if (device_ >= count)
      throw qlab::Error(fmt::format("[backend] device: CUDA device {} does not exist ({} visible)",
                                    device_, count));
  }
  std::unique_ptr<qlab::Executable> lower(qlab::GraphModule module) const override {
    return std::make_unique<Float>(std::move(module), device(), precision_);
  }
  std::unique_ptr<qlab::Executable> lower(
      std::shared_ptr<const qlab::QuantizedModel> model) const override {
    if (auto why = int_mm_blocker(*model); !why.empty())
      return std::make_unique<Simulated>(std::move(model), device(), why);
    return std::make_unique<Int8>(std::move(model), device());
  }

 private:
  c10::DeviceIndex device_ = 0;
  Precision precision_{torch::kFloat32, qlab::Mode::fp32};
};

}  // namespace

QLAB_PLUGIN(
    CudaBackend, "backend", "cuda",
    "NVIDIA GPU: training, fp32/fp16/bf16 inference, int8 layers on at::_int_mm, fake-quant "
    "simulation of the rest")
