#pragma once
// Metric plugins: what is measured of a lowered model.
#include <qlab/plugin/backend.hpp>
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/model.hpp>
#include <qlab/plugin/plugin.hpp>

#include <map>

namespace qlab {

/// What the host gives a metric. Implemented by the host.
class MeasureContext {
 public:
  virtual ~MeasureContext() = default;
  virtual const Model& model() const = 0;
  virtual const Graph& graph() const = 0;
  virtual Executable& executable() = 0;
  virtual const Dataset& test_set() const = 0;
  /// `[metrics] batch_size`: the batch latency and memory are measured at.
  virtual std::int64_t batch_size() const = 0;
  /// The fp32 executable a quantized model is compared with, or null when
  /// measuring the baseline itself (metrics may time both, interleaved).
  virtual Executable* reference() = 0;
  /// The quantized model being measured, or null for a float model.
  virtual const QuantizedModel* quantized() const = 0;
  /// The float model (the baseline, or the fused float twin of a quantized one).
  virtual GraphModule float_module() const = 0;
  /// The executable's outputs over the whole test set, in order, on the host;
  /// computed once and shared by every metric that asks.
  virtual const std::vector<torch::Tensor>& test_outputs() = 0;
};

/// Result keys (DESIGN.md): accuracy, loss, size_bytes, latency_ms, ...
using MetricValues = std::map<std::string, double>;

class Metric : public Plugin {
 public:
  /// The result keys this metric may write.
  virtual std::vector<std::string> keys() const = 0;
  /// Adds its values to `out`; adds nothing where it does not apply (a
  /// metric that does not apply is absent, never zero).
  virtual void measure(MeasureContext& ctx, MetricValues& out) const = 0;
};

}  // namespace qlab
