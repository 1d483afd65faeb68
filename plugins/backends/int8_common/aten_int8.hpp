#pragma once
// The int8 backends (onednn, qnnpack, fbgemm) differ only in the quantized
// engine LibTorch dispatches to and what that engine requires of qparams.
#include "cpu_int8.hpp"

#include <qlab/plugin/backend.hpp>

#include <ATen/Context.h>

#include <functional>
#include <optional>

namespace qlab::int8 {

/// A static conv2d or linear layer as the int8 executable offers it to a
/// backend's own kernels: its weights, and the uint8 codes [0, qmax] of its
/// input's grid and of its output's.
struct LayerOffer {
  const Node& node;
  const QLayer& layer;
  const QParams& input;  ///< the grid reaching the layer (bits, qmin, qmax)
  torch::Tensor bias;    ///< what the int8 kernels add: int32_bias values; undefined if none
  double out_scale;
  std::int64_t out_zero_point;
  std::uint8_t out_qmax;
};

/// A layer on a backend's own kernels: quint8 codes in, quint8 codes out.
struct LayerKernel {
  std::string name;  ///< as reports name it
  std::function<torch::Tensor(const torch::Tensor& input, bool parallel)> run;
};

struct EngineInfo {
  const char* name;  ///< backend name: "onednn", "qnnpack", "fbgemm"
  at::QEngine engine;
  /// Run qlab's code kernels (quantizing, average pooling) on LibTorch's
  /// OpenMP threads. Not on an engine with its own thread pool, whose
  /// threads would then fight OpenMP's spinning ones for the cores.
  bool parallel_code_kernels = true;
  /// Kernels of the backend's own that take the layers they fit (bitserial);
  /// nothing: the layer runs on the engine's.
  std::function<std::optional<LayerKernel>(const LayerOffer&)> own_kernels;
  /// Run convolutions over few input channels (a network's first, on an
  /// image) on qlab's image convolution (image_conv.hpp), which outruns the
  /// engines' there; false: on the engine's, for benchmarks that compare.
  bool image_convs = true;
};

/// A backend on one of LibTorch's quantized CPU engines: fp32 models run on
/// LibTorch's CPU kernels, 8-bit quantized models on the engine's prepacked
/// int8 kernels, other bit widths as a labelled fake-quant simulation.
class AtenInt8Backend : public Backend {
 public:
  explicit AtenInt8Backend(EngineInfo info) : info_(info) {}
  Schema options() const override;
  Availability availability() const override;
  bool supports(Op op, Mode mode) const override;
  void configure(const Options& opts) override;
  /// Derived from the CPU's int8 path and `[backend] reduce_range`.
  EngineConstraints constraints() const override;
  std::unique_ptr<Executable> lower(GraphModule module) const override;
  std::unique_ptr<Executable> lower(std::shared_ptr<const QuantizedModel> model) const override;

 private:
  void require_available() const;
  EngineInfo info_;
  RangeChoice range_ = RangeChoice::automatic;
};

}  // namespace qlab::int8
