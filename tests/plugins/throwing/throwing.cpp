// A plugin whose factory throws: loading must fail with the plugin's message.
#include <qlab/plugin/metric.hpp>

#include <stdexcept>

namespace {
class Throwing final : public qlab::Metric {
 public:
  Throwing() { throw std::runtime_error("cannot open /dev/imaginary"); }
  std::vector<std::string> keys() const override { return {}; }
  void measure(qlab::MeasureContext&, qlab::MetricValues&) const override {}
};
}  // namespace

QLAB_PLUGIN(Throwing, "metric", "throwing", "its factory throws")
