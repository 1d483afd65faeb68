#pragma once
// qlab::Graph: a model as named nodes over a small closed set of ops.
//
// LibTorch's C++ frontend cannot trace a module or swap a submodule that
// forward() calls directly, so models describe themselves as a Graph instead.
// Quantizers transform the graph, backends lower it, reports print it.
// Nodes are kept in insertion order, which must be a topological order: a
// node may only name earlier nodes as inputs.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qlab {

enum class Op {
  input,
  conv2d,
  linear,
  batch_norm2d,
  relu,
  relu6,
  sigmoid,
  max_pool2d,
  avg_pool2d,
  adaptive_avg_pool2d,
  flatten,
  dropout,
  add,
  reparameterize,  ///< VAE: inputs (mu, logvar) -> mu + eps * exp(logvar / 2), eps ~ N(0, 1)
};

const char* to_string(Op op);

/// An activation fused into a conv2d or linear node by qlab::fuse.
enum class Activation { none, relu, relu6 };

/// Attributes of every op in one flat record; each op reads only its own.
struct Attrs {
  std::int64_t in = 0;      ///< conv: in_channels; linear: in_features; bn: features
  std::int64_t out = 0;     ///< conv: out_channels; linear: out_features
  std::int64_t kernel = 1;  ///< conv and pooling
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t groups = 1;
  std::int64_t output_size = 1;  ///< adaptive_avg_pool2d
  bool bias = true;
  double p = 0.5;                            ///< dropout probability
  double eps = 1e-5;                         ///< batch norm
  double momentum = 0.1;                     ///< batch norm
  Activation activation = Activation::none;  ///< conv2d, linear: fused activation
  std::vector<std::int64_t> shape;           ///< input: per-sample shape
};

struct Node {
  std::string name;  ///< dotted path, e.g. "features.0"
  Op op = Op::input;
  std::vector<std::string> inputs;  ///< names of earlier nodes
  Attrs attrs;
  bool printed = true;  ///< false for ops PyTorch would call in forward()
};

/// Shape of one sample (no batch dimension): {C, H, W} or {F}.
using Shape = std::vector<std::int64_t>;

struct LayerStats {
  std::string name;
  Op op;
  Shape output;
  std::int64_t params = 0;
  std::int64_t macs = 0;  ///< multiply-accumulates for one sample
};

/// What an op's float computation is given.
struct OpCall {
  const Attrs& attrs;
  std::vector<torch::Tensor> inputs;
  torch::nn::Module* layer = nullptr;  ///< conv2d, linear, batch_norm2d: the op's parameters
  torch::Tensor weight;                ///< conv2d, linear: used instead of the layer's when defined
  bool training = false;               ///< dropout
};

/// Everything qlab knows of one op: one row of the op table (graph/ops.cpp),
/// which the graph, its printer and module, the quantizers and the backends
/// read instead of switching on the op.
struct OpInfo {
  Op op;
  const char* name;   ///< as configs, errors and reports spell it
  std::size_t arity;  ///< inputs it takes
  /// Fills `out` (output shape of one sample, parameters, MACs) from the
  /// input shapes; returns why they do not fit, or "" when they do.
  std::string (*shape)(const Attrs& a, const std::vector<Shape>& in, LayerStats& out);
  /// Its PyTorch module's repr in print(model); null for ops forward() calls.
  std::string (*repr)(const Attrs& a);
  /// The PyTorch module holding its parameters; null for ops without any.
  std::shared_ptr<torch::nn::Module> (*layer)(const Attrs& a);
  /// Its float computation: GraphModule::forward's, and what a backend runs
  /// for an op it has no kernel for.
  torch::Tensor (*forward)(const OpCall& call);
  /// conv2d, linear: a weight quantizers quantize and into which fusion
  /// folds batch norm and activations.
  bool weighted;
  /// Whether its output needs quantization parameters of its own; false
  /// when the output lies on its input's grid (ReLU, pooling, flatten).
  bool own_grid;
  /// Whether its output, on a quantized input, falls between the input's
  /// codes (average pooling) and is rounded back onto them, as int8 kernels do.
  bool rounds_to_input_grid;
  /// Whether int8 backends compute it in integers; others run it in float
  /// between a dequantize and a quantize.
  bool integer_kernel;
  /// The activation it becomes when fused into a preceding conv2d/linear.
  Activation fuses_as;
};

const OpInfo& op_info(Op op);

class Graph {
 public:
  explicit Graph(std::string type_name = "Model") : type_name_(std::move(type_name)) {}

  // Builders: each appends one node and returns its name, to chain inputs.
  std::string input(const std::string& name, Shape shape);
  std::string conv2d(const std::string& name, const std::string& x, std::int64_t in,
                     std::int64_t out, std::int64_t kernel, std::int64_t stride = 1,
                     std::int64_t padding = 0, std::int64_t groups = 1, bool bias = true);
  std::string linear(const std::string& name, const std::string& x, std::int64_t in,
                     std::int64_t out, bool bias = true);
  std::string batch_norm2d(const std::string& name, const std::string& x, std::int64_t features);
  std::string relu(const std::string& name, const std::string& x);
  std::string relu6(const std::string& name, const std::string& x);
  std::string sigmoid(const std::string& name, const std::string& x);
  std::string max_pool2d(const std::string& name, const std::string& x, std::int64_t kernel,
                         std::int64_t stride);
  std::string avg_pool2d(const std::string& name, const std::string& x, std::int64_t kernel,
                         std::int64_t stride);
  std::string adaptive_avg_pool2d(const std::string& name, const std::string& x,
                                  std::int64_t output_size);
  std::string flatten(const std::string& name, const std::string& x);
  std::string dropout(const std::string& name, const std::string& x, double p);
  std::string add(const std::string& name, const std::string& a, const std::string& b);
  std::string reparameterize(const std::string& name, const std::string& mu,
                             const std::string& logvar);
  /// Appends a node as given (for passes); checks the name and inputs.
  std::string append(Node node);

  /// Marks node `name` as a forward()-time call, left out of print().
  Graph& functional(const std::string& name);
  /// Sets the class name print() shows for a submodule prefix ("features.1").
  Graph& group_type(const std::string& prefix, std::string type_name);
  void set_outputs(std::vector<std::string> names);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(const std::string& name) const;
  const std::vector<std::string>& outputs() const { return outputs_; }
  /// The nodes whose values forward() returns: outputs(), or the last node
  /// when none were set.
  std::vector<std::string> output_nodes() const {
    if (!outputs_.empty() || nodes_.empty()) return outputs_;
    return {nodes_.back().name};
  }
  const std::string& type_name() const { return type_name_; }
  const std::map<std::string, std::string>& group_types() const { return group_types_; }
  const Shape& input_shape() const;

  /// Output shape, parameters and MACs per node; throws qlab::Error when
  /// shapes do not fit (e.g. a 5x5 conv on a 4x4 map).
  std::vector<LayerStats> stats() const;
  std::int64_t parameter_count() const;
  std::int64_t mac_count() const;

  /// PyTorch's `print(model)` layout.
  std::string print() const;
  /// A string that changes whenever the architecture does; stored in
  /// checkpoints so one is never loaded into another architecture.
  std::string signature() const;

 private:
  std::string type_name_;
  std::vector<Node> nodes_;
  std::map<std::string, std::size_t> index_;
  std::vector<std::string> outputs_;
  std::map<std::string, std::string> group_types_;
};

/// The trainable float module a Graph builds: parameters are registered under
/// the node names ("features.0.weight"), exactly like the PyTorch module.
class GraphModuleImpl : public torch::nn::Module {
 public:
  explicit GraphModuleImpl(const Graph& graph);
  std::vector<torch::Tensor> forward(const torch::Tensor& input);
  /// Called with each node's index and output; returns what later nodes see
  /// (used to fake-quantize activations and to observe them).
  using NodeHook = std::function<torch::Tensor(std::size_t node, const torch::Tensor& value)>;
  std::vector<torch::Tensor> forward(const torch::Tensor& input, const NodeHook& hook);
  /// Called with a conv2d/linear node's index and weight; returns the weight
  /// the node computes with (used to fake-quantize weights while training).
  using WeightHook = std::function<torch::Tensor(std::size_t node, const torch::Tensor& weight)>;
  std::vector<torch::Tensor> forward(const torch::Tensor& input, const NodeHook& hook,
                                     const WeightHook& weights);
  const Graph& graph() const { return graph_; }
  /// The torch module that holds node `name`'s parameters, if any.
  std::shared_ptr<torch::nn::Module> layer(const std::string& name) const;

 private:
  struct Step {
    Op op;
    std::vector<std::size_t> inputs;
    Attrs attrs;
    std::shared_ptr<torch::nn::Module> layer;  ///< null for ops without parameters
  };
  Graph graph_;
  std::vector<Step> steps_;
  std::vector<std::size_t> outputs_;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> layers_;
};
TORCH_MODULE(GraphModule);

/// Node `layer`'s parameter `key` ("weight", "bias"), detached; undefined
/// when the layer has none.
torch::Tensor layer_parameter(const GraphModule& module, const std::string& layer,
                              const std::string& key);

/// A new module of the same graph holding copies of `module`'s parameters
/// and buffers, in eval mode.
GraphModule clone_module(const GraphModule& module);

}  // namespace qlab
