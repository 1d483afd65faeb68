#pragma once
// Backend plugins: where, and with which kernels, a model runs.
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/options.hpp>
#include <qlab/plugin/plugin.hpp>
#include <qlab/plugin/quantizer.hpp>

namespace qlab {

/// How a result row's model ran: its numbers are only comparable knowing this.
enum class Mode { fp32, int8, simulated, fp16, bf16 };
const char* to_string(Mode mode);

struct Availability {
  bool available = true;
  std::string reason;  ///< why not, when unavailable
};

/// A model lowered onto a backend, ready for inference. Owned by the host;
/// the backend's library stays loaded while one exists.
class Executable {
 public:
  virtual ~Executable() = default;
  /// Runs one batch (host tensor in); returns the graph's outputs on the host.
  virtual std::vector<torch::Tensor> run(const torch::Tensor& batch) = 0;
  virtual Mode mode() const = 0;
  /// One line for reports: engine, device, precision.
  virtual std::string describe() const = 0;
  /// One line per graph node: the kernel it runs and the tensor type it
  /// produces ("features.0: quantized::conv2d_relu -> quint8"), so a report
  /// or test can see where data is quantized. Default: describe().
  virtual std::vector<std::string> lowered() const { return {describe()}; }
  /// For a device with memory of its own (a GPU): the most its allocator
  /// held since reset_device_peak(), in bytes; -1 where inference runs in
  /// host memory, which the memory metric measures itself.
  virtual std::int64_t device_peak_bytes() const { return -1; }
  virtual void reset_device_peak() {}
};

class Backend : public Plugin {
 public:
  /// Options the backend accepts in `[backend]` (besides `name`).
  virtual Schema options() const { return {}; }
  /// Whether this build and machine can run the backend, and why not.
  virtual Availability availability() const { return {}; }
  /// Capability query: can this backend run `op` in `mode`.
  virtual bool supports(Op op, Mode mode) const = 0;
  /// Device training runs on when this backend is selected.
  virtual torch::Device device() const { return torch::kCPU; }
  /// Applies the options process-wide (threads, engine); called before training.
  virtual void configure(const Options& opts) = 0;
  /// Lowers a trained float module for inference here; the module is shared.
  virtual std::unique_ptr<Executable> lower(GraphModule module) const = 0;
  /// What quantizers must respect for this backend's int8 kernels.
  virtual EngineConstraints constraints() const { return {}; }
  /// Lowers a quantized model: onto int8 kernels where it can (mode int8),
  /// else as a fake-quant simulation (mode simulated), never silently.
  virtual std::unique_ptr<Executable> lower(std::shared_ptr<const QuantizedModel> model) const = 0;
};

/// Which kernels run a float module on the CPU.
enum class FloatKernels {
  best,  ///< oneDNN primitives where the build has oneDNN and they lower the graph, else LibTorch
  libtorch,  ///< LibTorch's CPU kernels, op by op, as GraphModule::forward runs them
};

/// A float module in eval mode on the CPU (mode fp32): the reference every
/// backend's fp32 path uses. Its describe() names the kernels, and why
/// LibTorch's where `best` could not use oneDNN.
std::unique_ptr<Executable> float_executable(GraphModule module,
                                             FloatKernels kernels = FloatKernels::best);

/// A quantized model run in float with fake quantization: how every backend
/// runs bit widths it has no kernels for. Its mode is `simulated`, and its
/// description says why (`reason`).
std::unique_ptr<Executable> simulated_executable(std::shared_ptr<const QuantizedModel> model,
                                                 std::string reason);

}  // namespace qlab
