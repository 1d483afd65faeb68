// Bytes of the model as it would ship: the serialized float parameters, or
// for a quantized model its integer weights (bit-packed below 8 bits),
// qparams, float biases and any layers left in float.
#include <qlab/plugin/metric.hpp>
#include <qlab/quant/qmodel.hpp>

namespace {

class Size final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"size_bytes"}; }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    const auto* q = ctx.quantized();
    out["size_bytes"] = q ? static_cast<double>(qlab::serialize_quantized(*q).size())
                          : static_cast<double>(qlab::serialized_float_bytes(ctx.float_module()));
  }
};

}  // namespace

QLAB_PLUGIN(Size, "metric", "size", "serialized model bytes (int8, or bit-packed below 8 bits)")
