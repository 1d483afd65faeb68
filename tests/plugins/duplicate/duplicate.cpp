// A second metric called "accuracy": must be refused next to the in-tree one.
#include <qlab/plugin/metric.hpp>

namespace {
class Impostor final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"accuracy"}; }
  void measure(qlab::MeasureContext&, qlab::MetricValues& out) const override {
    out["accuracy"] = 100;
  }
};
}  // namespace

QLAB_PLUGIN(Impostor, "metric", "accuracy", "a duplicate of the in-tree accuracy metric")
