// A plugin built against another LibTorch: the host must refuse it unrun.
#include <qlab/plugin/metric.hpp>

namespace {
class Never final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override { return {}; }
  void measure(qlab::MeasureContext&, qlab::MetricValues&) const override {}
};
std::unique_ptr<qlab::Plugin> make_never() { return std::make_unique<Never>(); }
}  // namespace

extern "C" BOOST_SYMBOL_EXPORT const qlab::PluginInfo qlab_plugin_info{
    qlab::kPluginApiVersion, "0.4.1", "metric", "bad_torch", "built against LibTorch 0.4.1"};
BOOST_DLL_ALIAS(make_never, qlab_plugin_factory)
