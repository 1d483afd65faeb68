#pragma once
// Measuring one lowered model: the context metric plugins read, and the run
// of every metric over it.
#include <qlab/plugin/metric.hpp>
#include <qlab/registry.hpp>

#include <memory>
#include <string>
#include <vector>

namespace qlab {

class RunContext : public MeasureContext {
 public:
  RunContext(const Model& model, const Graph& graph, Executable& exe, const Dataset& test,
             std::int64_t batch, const QuantizedModel* quantized, GraphModule float_module,
             Executable* reference)
      : model_(model),
        graph_(graph),
        exe_(exe),
        test_(test),
        batch_(batch),
        quantized_(quantized),
        float_module_(std::move(float_module)),
        reference_(reference) {}
  Executable* reference() override { return reference_; }
  const QuantizedModel* quantized() const override { return quantized_; }
  GraphModule float_module() const override { return float_module_; }
  const Model& model() const override { return model_; }
  const Graph& graph() const override { return graph_; }
  Executable& executable() override { return exe_; }
  const Dataset& test_set() const override { return test_; }
  std::int64_t batch_size() const override { return batch_; }
  /// The model's outputs on the whole test set, computed once.
  const std::vector<torch::Tensor>& test_outputs() override;

 private:
  const Model& model_;
  const Graph& graph_;
  Executable& exe_;
  const Dataset& test_;
  std::int64_t batch_;
  const QuantizedModel* quantized_;
  GraphModule float_module_;
  Executable* reference_;
  std::vector<torch::Tensor> outputs_;
};

struct Measured {
  MetricValues metrics;
  Mode mode;
  std::string executable;
  std::vector<std::string> not_applicable;  ///< metrics that wrote none of their keys
};

// Runs every metric on one lowered model.
Measured measure(const std::vector<std::string>& metric_names,
                 const std::vector<std::shared_ptr<Metric>>& metrics, RunContext& ctx);

}  // namespace qlab
