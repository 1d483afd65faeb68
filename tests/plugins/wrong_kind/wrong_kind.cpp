// Declares kind "model" but its object is a metric.
#include <qlab/plugin/metric.hpp>

namespace {
class NotAModel final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {}; }
  void measure(qlab::MeasureContext&, qlab::MetricValues&) const override {}
};
}  // namespace

QLAB_PLUGIN(NotAModel, "model", "not_a_model", "declares the wrong kind")
