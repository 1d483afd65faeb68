// A metric that crashes the process when it measures, as a buggy plugin or
// an out-of-bounds kernel would: `qlab sweep --isolate` must store the
// point as failed, naming the signal, and go on.
#include <qlab/plugin/metric.hpp>

#include <csignal>

namespace {
class Crashing final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"never"}; }
  void measure(qlab::MeasureContext&, qlab::MetricValues&) const override { std::raise(SIGSEGV); }
};
}  // namespace

QLAB_PLUGIN(Crashing, "metric", "crashing", "crashes with SIGSEGV when it measures")
