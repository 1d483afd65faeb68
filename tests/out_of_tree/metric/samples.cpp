// A trivial metric: how many test samples the model was evaluated on.
#include <qlab/plugin/metric.hpp>

namespace {

class Samples final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"test_samples"}; }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    out["test_samples"] = static_cast<double>(ctx.test_outputs().at(0).size(0));
  }
};

}  // namespace

QLAB_PLUGIN(Samples, "metric", "samples", "number of test samples evaluated (out-of-tree example)")
