// A plugin as an older or newer qlab would have built it: the info record
// names another plugin API version. The host must refuse it unrun.
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
    999, qlab::kTorchVersion, "metric", "bad_api", "built for plugin API 999"};
BOOST_DLL_ALIAS(make_never, qlab_plugin_factory)
