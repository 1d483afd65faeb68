#include "io/onnx_qdq.hpp"

#include <qlab/error.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/version.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <set>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
// ONNX's checker.h defines a fail_check macro, which would rewrite
// QLAB_CHECK's call to qlab::fail_check.
#undef fail_check

namespace qlab {
namespace {

constexpr int kOpset = 13;

int onnx_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return onnx::TensorProto_DataType_FLOAT;
    case torch::kUInt8:
      return onnx::TensorProto_DataType_UINT8;
    case torch::kInt8:
      return onnx::TensorProto_DataType_INT8;
    case torch::kInt32:
      return onnx::TensorProto_DataType_INT32;
    case torch::kInt64:
      return onnx::TensorProto_DataType_INT64;
    default:
      QLAB_CHECK(false, std::string("no ONNX type for ") + c10::toString(t));
  }
  return 0;
}

// Builds the graph: initializers, nodes, and the name each qlab node's
// output goes by.
class Writer {
 public:
  explicit Writer(onnx::GraphProto& g) : g_(g) {}

  void tensor(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    auto* init = g_.add_initializer();
    init->set_name(name);
    init->set_data_type(onnx_type(c.scalar_type()));
    for (const auto d : c.sizes()) init->add_dims(d);
    init->set_raw_data(c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size());
  }

  onnx::NodeProto& node(const std::string& op, const std::string& name,
                        const std::vector<std::string>& inputs, const std::string& output) {
    auto* n = g_.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& in : inputs) n->add_input(in);
    n->add_output(output);
    ++nodes_;
    return *n;
  }

  static void ints(onnx::NodeProto& n, const std::string& name, std::vector<std::int64_t> v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (const auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto& n, const std::string& name, std::int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto& n, const std::string& name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    a->set_f(v);
  }

  // Clip(x, lo, hi); opset 13 takes the bounds as inputs.
  void clip(const std::string& name, const std::string& in, const std::string& out, float lo,
            float hi) {
    tensor(name + "/clip_min", torch::full({}, lo, torch::kFloat32));
    tensor(name + "/clip_max", torch::full({}, hi, torch::kFloat32));
    node("Clip", name + "/Clip", {in, name + "/clip_min", name + "/clip_max"}, out);
  }

  std::int64_t nodes() const { return nodes_; }

 private:
  onnx::GraphProto& g_;
  std::int64_t nodes_ = 0;
};

// A static activation grid as the int8 kernels run it: uint8 codes
// [0, qmax - qmin] with the zero point shifted alike.
struct Grid {
  float scale = 1;
  std::uint8_t zero_point = 0;
  std::uint8_t top = 255;
};

Grid grid_of(const QParams& q) {
  return {static_cast<float>(q.scale.item<double>()),
          static_cast<std::uint8_t>(q.zero_point.item<std::int64_t>() - q.qmin),
          static_cast<std::uint8_t>(q.qmax - q.qmin)};
}

class Exporter {
 public:
  Exporter(GraphModule module, const QuantizedModel* q, onnx::GraphProto& g)
      : module_(std::move(module)), q_(q), w_(g), graph_(module_->graph()) {
    for (const auto& p : module_->named_parameters()) params_[p.key()] = p.value();
    for (const auto& b : module_->named_buffers()) params_[b.key()] = b.value();
  }

  OnnxExport run(onnx::GraphProto& g) {
    for (const auto& n : graph_.nodes()) {
      const std::string raw = emit(n);
      // The grid this node's output carries: its own, or (for ops that keep
      // their input's grid, as the int8 kernels run them) its input's.
      const QParams* grid = activation_grid(n.name);
      if (!grid && !op_info(n.op).own_grid && !n.inputs.empty())
        if (auto it = carried_.find(n.inputs[0]); it != carried_.end()) grid = it->second;
      if (grid) {
        carried_[n.name] = grid;
        value_[n.name] = quantize_dequantize(n.name, raw, grid_of(*grid), in_steps_.count(n.name));
      } else {
        value_[n.name] = raw;
      }
    }
    const auto outs = graph_.output_nodes();
    const auto stats = graph_.stats();
    for (const auto& o : outs) {
      // Graph outputs go by their node's name.
      std::string v = value_.at(o);
      if (v != o) {
        w_.node("Identity", o + "/Output", {v}, o);
        v = o;
      }
      auto* vi = g.add_output();
      vi->set_name(v);
      auto* t = vi->mutable_type()->mutable_tensor_type();
      t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
      t->mutable_shape()->add_dim()->set_dim_param("batch");
      for (const auto& st : stats)
        if (st.name == o)
          for (const auto d : st.output) t->mutable_shape()->add_dim()->set_dim_value(d);
    }
    OnnxExport out;
    out.nodes = w_.nodes();
    out.qdq_pairs = qdq_;
    return out;
  }

 private:
  const QParams* activation_grid(const std::string& name) const {
    if (!q_) return nullptr;
    const auto it = q_->activations.find(name);
    return it == q_->activations.end() ? nullptr : &it->second;
  }

  // `in_steps`: x counts steps of the grid, as pooling_in_steps leaves it;
  // the pair then quantizes at its /steps_scale (1) and dequantizes at the
  // grid's scale.
  std::string quantize_dequantize(const std::string& name, std::string x, const Grid& grid,
                                  bool in_steps = false) {
    const float unit = in_steps ? 1.0f : grid.scale;
    if (grid.top < 255) {  // a grid narrower than 8 bits: its codes' bounds
      const float lo = -static_cast<float>(grid.zero_point) * unit;
      const float hi = static_cast<float>(grid.top - grid.zero_point) * unit;
      w_.clip(name + "/grid", x, name + "/clipped", lo, hi);
      x = name + "/clipped";
    }
    w_.tensor(name + "/scale", torch::full({}, grid.scale, torch::kFloat32));
    w_.tensor(name + "/zero_point", torch::full({}, grid.zero_point, torch::kUInt8));
    w_.node("QuantizeLinear", name + "/QuantizeLinear",
            {x, name + (in_steps ? "/steps_scale" : "/scale"), name + "/zero_point"},
            name + "/quantized");
    const std::string out = name == "input" ? "input/dequantized" : name;
    w_.node("DequantizeLinear", name + "/DequantizeLinear",
            {name + "/quantized", name + "/scale", name + "/zero_point"}, out);
    ++qdq_;
    return out;
  }

  const std::string& in(const Node& n, std::size_t k = 0) const {
    return value_.at(n.inputs.at(k));
  }

  // The input of an average pooling on a grid, in steps of that grid: its
  // codes dequantized at scale 1, integers that a float mean sums exactly.
  // Dequantized at the grid's scale, a tie k + 1/2 of the mean lands a float
  // rounding error off, and runtimes break it either way (11% of LeNet's
  // logits a step apart). The pooling's own pair then quantizes at scale 1,
  // so the file rounds each mean half to even, as the int8 kernels do.
  // Empty where the input is float or the pooling has a grid of its own.
  std::string pooling_in_steps(const Node& n) {
    const auto it = carried_.find(n.inputs.at(0));
    if (it == carried_.end() || activation_grid(n.name)) return "";
    const std::string& x = n.inputs.at(0);
    w_.tensor(n.name + "/steps_scale", torch::full({}, 1.0f, torch::kFloat32));
    w_.node("DequantizeLinear", n.name + "/Steps",
            {x + "/quantized", n.name + "/steps_scale", x + "/zero_point"}, n.name + "/steps");
    in_steps_.insert(n.name);
    return n.name + "/steps";
  }

  const torch::Tensor& param(const std::string& name) const {
    const auto it = params_.find(name);
    QLAB_CHECK(it != params_.end(), "no parameter " + name);
    return it->second;
  }

  // The weight and bias inputs of a conv2d or linear: float initializers,
  // or for a quantized layer int8 codes and int32 biases behind
  // DequantizeLinear.
  std::vector<std::string> weights(const Node& n) {
    const std::string w = n.name + ".weight", b = n.name + ".bias";
    const QLayer* quantized = nullptr;
    if (q_)
      if (const auto it = q_->layers.find(n.name); it != q_->layers.end()) quantized = &it->second;
    if (!quantized) {  // a float model, or a layer left in float
      w_.tensor(w, param(w));
      if (!params_.count(b)) return {w};
      w_.tensor(b, param(b));
      return {w, b};
    }
    const QLayer& l = *quantized;
    const auto [codes, scale] = int8_codes(l);
    const bool per_channel = l.weight.per_channel();
    const torch::Tensor w_scale = per_channel
                                      ? scale.to(torch::kFloat32)
                                      : torch::full({}, scale.item<double>(), torch::kFloat32);
    w_.tensor(w + "_quantized", codes);
    w_.tensor(w + "_scale", w_scale);
    w_.tensor(w + "_zero_point", torch::zeros_like(w_scale, torch::kInt8));
    auto& dq = w_.node("DequantizeLinear", w + "/DequantizeLinear",
                       {w + "_quantized", w + "_scale", w + "_zero_point"}, w);
    if (per_channel) Writer::integer(dq, "axis", l.weight.axis);
    if (!l.bias.defined()) return {w};
    // int32 on the input's scale times the weight's, as the int8 kernels add it.
    const auto input_grid_it = carried_.find(n.inputs.at(0));
    QLAB_CHECK(input_grid_it != carried_.end(), "int8 layer without an input grid: " + n.name);
    const auto [codes32, scale32] = int32_bias(l, input_grid_it->second->scale.item<double>());
    const torch::Tensor b_scale = per_channel ? scale32 : scale32.reshape({});
    w_.tensor(b + "_quantized", codes32);
    w_.tensor(b + "_scale", b_scale);
    w_.tensor(b + "_zero_point", torch::zeros_like(b_scale, torch::kInt32));
    auto& bdq = w_.node("DequantizeLinear", b + "/DequantizeLinear",
                        {b + "_quantized", b + "_scale", b + "_zero_point"}, b);
    if (per_channel) Writer::integer(bdq, "axis", 0);
    return {w, b};
  }

  // A fused activation after a conv2d or linear. A quantized output grid
  // bounds relu6 from above as the int8 kernels run it (relu, then the
  // grid's top), so there it is a Relu too.
  std::string activate(const Node& n, const std::string& x) {
    const Activation a = n.attrs.activation;
    if (a == Activation::none) return x;
    const std::string out = n.name + "/activated";
    if (a == Activation::relu || activation_grid(n.name))
      w_.node("Relu", n.name + "/Relu", {x}, out);
    else
      w_.clip(n.name + "/relu6", x, out, 0.0f, 6.0f);
    return out;
  }

  // The node's ONNX ops; returns the name of its float output.
  std::string emit(const Node& n) {
    const Attrs& a = n.attrs;
    const std::string out = n.name + "/output";
    switch (n.op) {
      case Op::input:
        return "input";
      case Op::conv2d: {
        std::vector<std::string> inputs{in(n)};
        for (auto& w : weights(n)) inputs.push_back(w);
        auto& conv = w_.node("Conv", n.name + "/Conv", inputs, n.name + "/conv");
        Writer::ints(conv, "kernel_shape", {a.kernel, a.kernel});
        Writer::ints(conv, "strides", {a.stride, a.stride});
        Writer::ints(conv, "pads", {a.padding, a.padding, a.padding, a.padding});
        Writer::ints(conv, "dilations", {1, 1});
        Writer::integer(conv, "group", a.groups);
        return activate(n, n.name + "/conv");
      }
      case Op::linear: {
        std::vector<std::string> inputs{in(n)};
        for (auto& w : weights(n)) inputs.push_back(w);
        auto& gemm = w_.node("Gemm", n.name + "/Gemm", inputs, n.name + "/gemm");
        Writer::integer(gemm, "transB", 1);
        return activate(n, n.name + "/gemm");
      }
      case Op::batch_norm2d: {
        for (const char* p : {"weight", "bias", "running_mean", "running_var"})
          w_.tensor(n.name + "." + p, param(n.name + "." + p));
        auto& bn = w_.node("BatchNormalization", n.name + "/BatchNormalization",
                           {in(n), n.name + ".weight", n.name + ".bias", n.name + ".running_mean",
                            n.name + ".running_var"},
                           out);
        Writer::real(bn, "epsilon", static_cast<float>(a.eps));
        return out;
      }
      case Op::relu:
        w_.node("Relu", n.name + "/Relu", {in(n)}, out);
        return out;
      case Op::relu6:
        w_.clip(n.name, in(n), out, 0.0f, 6.0f);
        return out;
      case Op::sigmoid:
        w_.node("Sigmoid", n.name + "/Sigmoid", {in(n)}, out);
        return out;
      case Op::max_pool2d:
      case Op::avg_pool2d: {
        std::string x = in(n);
        if (n.op == Op::avg_pool2d)
          if (auto steps = pooling_in_steps(n); !steps.empty()) x = steps;
        auto& pool =
            w_.node(n.op == Op::max_pool2d ? "MaxPool" : "AveragePool",
                    n.name + (n.op == Op::max_pool2d ? "/MaxPool" : "/AveragePool"), {x}, out);
        Writer::ints(pool, "kernel_shape", {a.kernel, a.kernel});
        Writer::ints(pool, "strides", {a.stride, a.stride});
        Writer::ints(pool, "pads", {a.padding, a.padding, a.padding, a.padding});
        if (n.op == Op::avg_pool2d) Writer::integer(pool, "count_include_pad", 1);
        return out;
      }
      case Op::adaptive_avg_pool2d: {
        std::string x = in(n);
        if (auto steps = pooling_in_steps(n); !steps.empty()) x = steps;
        if (a.output_size == 1) {
          w_.node("GlobalAveragePool", n.name + "/GlobalAveragePool", {x}, out);
          return out;
        }
        const Shape& map = input_shape(n);
        if (map.size() != 3 || map[1] % a.output_size || map[2] % a.output_size)
          throw Error(
              fmt::format("{}: adaptive average pooling to {}x{} of a {} map has unequal "
                          "windows, which ONNX's AveragePool cannot express",
                          n.name, a.output_size, a.output_size, fmt::join(map, "x")));
        auto& pool = w_.node("AveragePool", n.name + "/AveragePool", {x}, out);
        Writer::ints(pool, "kernel_shape", {map[1] / a.output_size, map[2] / a.output_size});
        Writer::ints(pool, "strides", {map[1] / a.output_size, map[2] / a.output_size});
        return out;
      }
      case Op::flatten: {
        auto& f = w_.node("Flatten", n.name + "/Flatten", {in(n)}, out);
        Writer::integer(f, "axis", 1);
        return out;
      }
      case Op::dropout:  // inference: the identity
        w_.node("Identity", n.name + "/Identity", {in(n)}, out);
        return out;
      case Op::add:
        w_.node("Add", n.name + "/Add", {in(n, 0), in(n, 1)}, out);
        return out;
      case Op::reparameterize:
        throw Error(
            fmt::format("{}: reparameterize samples noise at run time; ONNX has no "
                        "deterministic equivalent, so a VAE does not export",
                        n.name));
    }
    QLAB_CHECK(false, std::string("unhandled op ") + to_string(n.op));
    return out;
  }

  const Shape& input_shape(const Node& n) {
    if (stats_.empty())
      for (const auto& st : graph_.stats()) stats_[st.name] = st.output;
    return stats_.at(n.inputs.at(0));
  }

  GraphModule module_;
  const QuantizedModel* q_;
  Writer w_;
  const Graph& graph_;
  std::map<std::string, torch::Tensor> params_;
  std::map<std::string, std::string> value_;       // qlab node -> the ONNX value consumers read
  std::map<std::string, const QParams*> carried_;  // qlab node -> the grid its output is on
  std::map<std::string, Shape> stats_;
  std::set<std::string> in_steps_;  // poolings whose output counts steps (pooling_in_steps)
  std::int64_t qdq_ = 0;
};

}  // namespace

OnnxExport onnx_model(GraphModule module, const QuantizedModel* quantized,
                      const std::map<std::string, std::string>& metadata) {
  if (quantized) {
    if (quantized->scheme == Scheme::dynamic)
      throw Error(
          "dynamic quantization does not export to ONNX QDQ: its activations are quantized per "
          "batch at run time, which QDQ's fixed grids cannot express; export a static model");
    if (const auto blockers = quantized->int8_blockers(); !blockers.empty()) {
      std::vector<std::string> why;
      for (const auto& [name, reason] : blockers) why.push_back(name + ": " + reason);
      throw Error(
          fmt::format("this model runs simulated, not on int8 grids, so it has none to "
                      "export ({})",
                      fmt::join(why, "; ")));
    }
    module = quantized->float_module;
  }
  module->eval();
  torch::NoGradGuard no_grad;
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("qlab");
  model.set_producer_version(version());
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  for (const auto& [key, value] : metadata) {
    auto* m = model.add_metadata_props();
    m->set_key(key);
    m->set_value(value);
  }
  onnx::GraphProto& g = *model.mutable_graph();
  g.set_name(module->graph().type_name());
  auto* input = g.add_input();
  input->set_name("input");
  auto* t = input->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("batch");
  for (const auto d : module->graph().input_shape())
    t->mutable_shape()->add_dim()->set_dim_value(d);

  OnnxExport out = Exporter(module, quantized, g).run(g);
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1));
  } catch (const std::exception& e) {
    throw Error(fmt::format("ONNX's checker refused the model qlab built: {}", e.what()));
  }
  if (!model.SerializeToString(&out.bytes)) throw Error("could not serialize the ONNX model");
  return out;
}

}  // namespace qlab
