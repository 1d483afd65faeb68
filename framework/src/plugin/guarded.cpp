#include "plugin/guarded.hpp"

#include <fmt/format.h>

namespace qlab {
namespace {

// One interface of a plugin, held by the host: `inner` (which keeps the
// plugin's library loaded) is reached only through call().
template <class T>
class Guarded : public T {
 public:
  Guarded(std::shared_ptr<T> inner, PluginRecord record)
      : inner_(std::move(inner)), record_(std::move(record)) {}

 protected:
  template <class F>
  auto call(const char* method, F&& fn) const -> decltype(fn(std::declval<T&>())) {
    return plugin_call(record_, method, [&] { return fn(*inner_); });
  }
  std::shared_ptr<T> inner_;
  PluginRecord record_;
};

class GuardedModel final : public Guarded<Model> {
 public:
  using Guarded::Guarded;
  Schema options() const override {
    return call("options", [](Model& m) { return m.options(); });
  }
  TrainRecipe default_recipe() const override {
    return call("default_recipe", [](Model& m) { return m.default_recipe(); });
  }
  Task task() const override {
    return call("task", [](Model& m) { return m.task(); });
  }
  bool normalize_inputs() const override {
    return call("normalize_inputs", [](Model& m) { return m.normalize_inputs(); });
  }
  Shape input_shape(const Shape& dataset_shape, const Options& opts) const override {
    return call("input_shape", [&](Model& m) { return m.input_shape(dataset_shape, opts); });
  }
  Graph build(const Options& opts, const DataInfo& data) const override {
    return call("build", [&](Model& m) { return m.build(opts, data); });
  }
  torch::Tensor loss(const std::vector<torch::Tensor>& outputs, const torch::Tensor& images,
                     const torch::Tensor& labels) const override {
    return call("loss", [&](Model& m) { return m.loss(outputs, images, labels); });
  }
};

class GuardedQuantizer final : public Guarded<Quantizer> {
 public:
  using Guarded::Guarded;
  QuantizerCaps caps() const override {
    return call("caps", [](Quantizer& q) { return q.caps(); });
  }
  Schema options() const override {
    return call("options", [](Quantizer& q) { return q.options(); });
  }
  QuantizedModel quantize(GraphModule trained, const Options& opts,
                          const QuantizeContext& ctx) const override {
    return call("quantize", [&](Quantizer& q) { return q.quantize(trained, opts, ctx); });
  }
};

// An executable a backend made: its calls are the backend's, tagged so, and
// it keeps the backend's library loaded while it lives.
class GuardedExecutable final : public Executable {
 public:
  GuardedExecutable(std::unique_ptr<Executable> inner, std::shared_ptr<Backend> owner,
                    PluginRecord record)
      : owner_(std::move(owner)), inner_(std::move(inner)), record_(std::move(record)) {}
  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    return call("run", [&] { return inner_->run(batch); });
  }
  Mode mode() const override {
    return call("mode", [&] { return inner_->mode(); });
  }
  std::string describe() const override {
    return call("describe", [&] { return inner_->describe(); });
  }
  std::vector<std::string> lowered() const override {
    return call("lowered", [&] { return inner_->lowered(); });
  }
  std::int64_t device_peak_bytes() const override {
    return call("device_peak_bytes", [&] { return inner_->device_peak_bytes(); });
  }
  void reset_device_peak() override {
    call("reset_device_peak", [&] { inner_->reset_device_peak(); });
  }

 private:
  template <class F>
  auto call(const char* method, F&& fn) const -> decltype(fn()) {
    return plugin_call(record_, method, std::forward<F>(fn));
  }
  std::shared_ptr<Backend> owner_;  // declared first: outlives inner_
  std::unique_ptr<Executable> inner_;
  PluginRecord record_;
};

class GuardedBackend final : public Guarded<Backend> {
 public:
  using Guarded::Guarded;
  Schema options() const override {
    return call("options", [](Backend& b) { return b.options(); });
  }
  Availability availability() const override {
    return call("availability", [](Backend& b) { return b.availability(); });
  }
  bool supports(Op op, Mode mode) const override {
    return call("supports", [&](Backend& b) { return b.supports(op, mode); });
  }
  torch::Device device() const override {
    return call("device", [](Backend& b) { return b.device(); });
  }
  void configure(const Options& opts) override {
    call("configure", [&](Backend& b) { b.configure(opts); });
  }
  EngineConstraints constraints() const override {
    return call("constraints", [](Backend& b) { return b.constraints(); });
  }
  std::unique_ptr<Executable> lower(GraphModule module) const override {
    return wrap(call("lower", [&](Backend& b) { return b.lower(module); }));
  }
  std::unique_ptr<Executable> lower(std::shared_ptr<const QuantizedModel> model) const override {
    return wrap(call("lower", [&](Backend& b) { return b.lower(model); }));
  }

 private:
  std::unique_ptr<Executable> wrap(std::unique_ptr<Executable> exe) const {
    if (!exe)
      throw PluginError(
          fmt::format("backend plugin '{}' (lower): returned no executable", record_.name));
    return std::make_unique<GuardedExecutable>(std::move(exe), inner_, record_);
  }
};

class GuardedMetric final : public Guarded<Metric> {
 public:
  using Guarded::Guarded;
  std::vector<std::string> keys() const override {
    return call("keys", [](Metric& m) { return m.keys(); });
  }
  void measure(MeasureContext& ctx, MetricValues& out) const override {
    call("measure", [&](Metric& m) { m.measure(ctx, out); });
  }
};

}  // namespace

std::shared_ptr<Model> guard(std::shared_ptr<Model> model, const PluginRecord& record) {
  return std::make_shared<GuardedModel>(std::move(model), record);
}
std::shared_ptr<Quantizer> guard(std::shared_ptr<Quantizer> quantizer, const PluginRecord& record) {
  return std::make_shared<GuardedQuantizer>(std::move(quantizer), record);
}
std::shared_ptr<Backend> guard(std::shared_ptr<Backend> backend, const PluginRecord& record) {
  return std::make_shared<GuardedBackend>(std::move(backend), record);
}
std::shared_ptr<Metric> guard(std::shared_ptr<Metric> metric, const PluginRecord& record) {
  return std::make_shared<GuardedMetric>(std::move(metric), record);
}

}  // namespace qlab
