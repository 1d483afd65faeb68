// Top-1 accuracy in percent over the test set; absent for models that do not
// classify (a reconstruction model has no accuracy, not an accuracy of 0).
#include <qlab/plugin/metric.hpp>

namespace {

class Accuracy final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {"accuracy"}; }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    if (ctx.model().task() != qlab::Task::classify) return;
    const auto& logits = ctx.test_outputs().at(0);
    const auto& labels = ctx.test_set().labels;
    if (labels.numel() == 0) return;
    const auto correct = logits.argmax(1).eq(labels).sum().item<double>();
    out["accuracy"] = 100.0 * correct / static_cast<double>(labels.numel());
  }
};

}  // namespace

QLAB_PLUGIN(Accuracy, "metric", "accuracy", "top-1 test accuracy, percent")
