// Lowering a QuantizedModel onto LibTorch's quantized CPU engines.
//
// Activations stay quantized (quint8) from the graph's input to its outputs:
// relu, pooling, flatten and dropout run on quantized tensors and keep their
// input's qparams; conv2d, linear and add requantize to calibrated qparams.
// Ops an engine has no int8 kernel for (batch norm outside a conv, sigmoid)
// dequantize, run in float and requantize, and the description lists them.
// The kernels are reached through the ATen dispatcher by schema name, so the
// same code runs on every LibTorch that still ships them.
#include "aten_int8.hpp"

#include "code_kernels.hpp"

#include <qlab/error.hpp>
#include <qlab/runtime.hpp>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

namespace qlab::int8 {
namespace {

c10::OperatorHandle op(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

c10::IValue call(const c10::OperatorHandle& h, torch::jit::Stack stack) {
  h.callBoxed(&stack);
  return std::move(stack.at(0));
}

struct Kernels {
  c10::OperatorHandle conv_prepack = op("quantized::conv2d_prepack");
  c10::OperatorHandle conv = op("quantized::conv2d", "new");
  c10::OperatorHandle conv_relu = op("quantized::conv2d_relu", "new");
  c10::OperatorHandle linear_prepack = op("quantized::linear_prepack");
  c10::OperatorHandle linear = op("quantized::linear");
  c10::OperatorHandle linear_relu = op("quantized::linear_relu");
  c10::OperatorHandle linear_dynamic = op("quantized::linear_dynamic");
  c10::OperatorHandle add = op("quantized::add");
};

const Kernels& kernels() {
  static const Kernels k;
  return k;
}

// `hwc_input`: the (C, H, W) map a linear layer's input was flattened from;
// the weight's columns are then put in (h, w, c) order, to take the map's
// channels-last bytes as they lie.
torch::Tensor int8_weight(const QLayer& l, const Shape* hwc_input = nullptr) {
  auto codes = l.codes.to(torch::kInt8);
  if (hwc_input)
    codes = codes.view({codes.size(0), (*hwc_input)[0], (*hwc_input)[1], (*hwc_input)[2]})
                .permute({0, 2, 3, 1})
                .reshape({codes.size(0), -1});
  if (l.weight.per_channel())
    return at::_make_per_channel_quantized_tensor(codes, l.weight.scale, l.weight.zero_point,
                                                  l.weight.axis);
  return at::_make_per_tensor_quantized_tensor(codes, l.weight.scale.item<double>(),
                                               l.weight.zero_point.item<std::int64_t>());
}

// An absent bias is None to the kernels, not an undefined tensor.
c10::IValue bias_of(const QLayer& l) {
  return l.bias.defined() ? c10::IValue(l.bias) : c10::IValue();
}

torch::Tensor as_float(const torch::Tensor& x) { return x.is_quantized() ? x.dequantize() : x; }

torch::Tensor activate(torch::Tensor x, Activation a) {
  if (a == Activation::relu) return torch::relu(x);
  if (a == Activation::relu6) return at::hardtanh(x, 0.0, 6.0);
  return x;
}

enum class Kind { input, qconv, qlinear, qlinear_dynamic, float_layer, qadd, stateless, float_op };

struct Step {
  Kind kind;
  Op op;
  Attrs attrs;
  std::vector<std::size_t> inputs;
  c10::IValue packed;
  c10::IValue packed_hwc;    // linear: weight columns in (h, w, c) order
  bool flatten_hwc = false;  // flatten: may hand on a channels-last map as a view
  bool requantize = false;   // static: quantize the output to (scale, zero_point)
  double scale = 1.0;
  std::int64_t zero_point = 0;
  std::shared_ptr<torch::nn::Module> layer;  // float fallback
};

bool int8_op(Op op) {
  switch (op) {
    case Op::batch_norm2d:
    case Op::sigmoid:
    case Op::reparameterize:
      return false;
    default:
      return true;
  }
}

class Int8Executable final : public Executable {
 public:
  Int8Executable(std::shared_ptr<const QuantizedModel> model, const EngineInfo& info,
                 bool reduce_range)
      : model_(std::move(model)), info_(info), reduce_range_(reduce_range) {
    at::globalContext().setQEngine(info_.engine);
    const auto& k = kernels();
    const Graph& g = model_->graph();
    const bool is_static = model_->scheme == "static";
    std::map<std::string, std::size_t> index;
    for (const auto& n : g.nodes()) {
      Step s;
      s.op = n.op;
      s.attrs = n.attrs;
      for (const auto& in : n.inputs) s.inputs.push_back(index.at(in));
      if (auto it = model_->activations.find(n.name);
          is_static && it != model_->activations.end()) {
        s.requantize = true;
        s.scale = it->second.scale.item<double>();
        s.zero_point = it->second.zero_point.item<std::int64_t>();
      }
      const auto layer = model_->layers.find(n.name);
      const bool quantized = layer != model_->layers.end();
      switch (n.op) {
        case Op::input:
          s.kind = Kind::input;
          break;
        case Op::conv2d:
          if (quantized && is_static) {
            s.kind = Kind::qconv;
            const std::vector<std::int64_t> stride{n.attrs.stride, n.attrs.stride},
                padding{n.attrs.padding, n.attrs.padding}, dilation{1, 1};
            s.packed = call(k.conv_prepack, {int8_weight(layer->second), bias_of(layer->second),
                                             stride, padding, dilation, n.attrs.groups});
          } else {
            s.kind = Kind::float_layer;
            fallbacks_.push_back(n.name);
          }
          break;
        case Op::linear:
          if (quantized) {
            s.kind = is_static ? Kind::qlinear : Kind::qlinear_dynamic;
            s.packed = call(k.linear_prepack, {int8_weight(layer->second), bias_of(layer->second)});
          } else {
            s.kind = Kind::float_layer;
            fallbacks_.push_back(n.name);
          }
          break;
        case Op::add:
          s.kind = s.requantize ? Kind::qadd : Kind::stateless;
          break;
        default:
          // Ops without int8 kernels run in float under either scheme; only the
          // static scheme, which requantizes around them, lists them as fallbacks.
          s.kind = int8_op(n.op) ? Kind::stateless : Kind::float_op;
          if (s.kind == Kind::float_op && is_static) fallbacks_.push_back(n.name);
      }
      if (s.kind == Kind::float_layer || n.op == Op::batch_norm2d)
        s.layer = model_->float_module->layer(n.name);
      index[n.name] = steps_.size();
      steps_.push_back(std::move(s));
    }
    plan_channels_last_flatten(g);
    // What each node runs and produces, known before any data flows.
    std::vector<bool> quantized_out(steps_.size(), false);
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      const bool in_q = !s.inputs.empty() && quantized_out[s.inputs[0]];
      const char* kernel = "float";
      switch (s.kind) {
        case Kind::input:
          kernel = s.requantize ? "quantize" : "float input";
          break;
        case Kind::qconv:
          kernel = s.attrs.activation == Activation::none ? "quantized::conv2d"
                                                          : "quantized::conv2d_relu";
          break;
        case Kind::qlinear:
          kernel = s.attrs.activation == Activation::none ? "quantized::linear"
                                                          : "quantized::linear_relu";
          break;
        case Kind::qlinear_dynamic:
          kernel = "quantized::linear_dynamic";
          break;
        case Kind::qadd:
          kernel = "quantized::add";
          break;
        case Kind::float_layer:
          kernel = "float layer (dequantize, fp32, requantize)";
          break;
        case Kind::float_op:
          kernel = s.requantize ? "float op (dequantize, fp32, requantize)" : "fp32 op";
          break;
        case Kind::stateless:
          kernel = !in_q           ? "fp32 op"
                   : s.flatten_hwc ? "quantized view in (h, w, c) order"
                                   : "quantized tensor op";
          break;
      }
      // Static conv, linear and add requantize to calibrated qparams; the
      // stateless ops keep whatever their input is.
      quantized_out[i] = s.requantize || (s.kind == Kind::stateless && in_q);
      lowered_.push_back(fmt::format("{}: {} -> {}", g.nodes()[i].name, kernel,
                                     quantized_out[i] ? "quint8" : "float"));
    }
    auto outs = g.outputs();
    if (outs.empty()) outs.push_back(g.nodes().back().name);
    for (const auto& o : outs) outputs_.push_back(index.at(o));
  }

  // Flattening a channels-last map in PyTorch's (c, h, w) order copies it
  // (0.59 MB per batch of 64 in MNIST CNN). Where every consumer of a flatten
  // is an int8 linear layer, each also gets its weight with columns in
  // (h, w, c) order, and the flatten becomes a view.
  void plan_channels_last_flatten(const Graph& g) {
    std::map<std::string, Shape> shapes;
    for (const auto& st : g.stats()) shapes[st.name] = st.output;
    std::vector<std::vector<std::size_t>> consumers(steps_.size());
    for (std::size_t i = 0; i < steps_.size(); ++i)
      for (auto in : steps_[i].inputs) consumers[in].push_back(i);
    const auto& outs = g.outputs();
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const auto& node = g.nodes()[i];
      if (node.op != Op::flatten || consumers[i].empty()) continue;
      if (std::find(outs.begin(), outs.end(), node.name) != outs.end()) continue;
      const Shape& map = shapes.at(node.inputs.at(0));
      if (map.size() != 3 || map[1] * map[2] == 1) continue;
      const bool all_int8_linear =
          std::all_of(consumers[i].begin(), consumers[i].end(), [&](std::size_t c) {
            return steps_[c].kind == Kind::qlinear || steps_[c].kind == Kind::qlinear_dynamic;
          });
      if (!all_int8_linear) continue;
      steps_[i].flatten_hwc = true;
      for (auto c : consumers[i]) {
        const QLayer& layer = model_->layers.at(g.nodes()[c].name);
        steps_[c].packed_hwc =
            call(kernels().linear_prepack, {int8_weight(layer, &map), bias_of(layer)});
      }
    }
  }

  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    at::globalContext().setQEngine(info_.engine);
    torch::NoGradGuard no_grad;
    const auto& k = kernels();
    const bool par = info_.parallel_code_kernels;
    std::vector<torch::Tensor> v(steps_.size());
    std::vector<bool> hwc(steps_.size(), false);  // a flatten's output in (h, w, c) order
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      const auto& a = s.attrs;
      const torch::Tensor& x = s.inputs.empty() ? batch : v[s.inputs[0]];
      torch::Tensor y;
      switch (s.kind) {
        case Kind::input:
          y = s.requantize ? quantize_codes(batch, s.scale, s.zero_point, par) : batch;
          break;
        // A fused relu6 runs as relu: the output grid was calibrated on relu6
        // outputs, so its top (<= 6) saturates what relu6 would clip.
        case Kind::qconv:
          y = call(a.activation == Activation::none ? k.conv : k.conv_relu,
                   {x, s.packed, s.scale, s.zero_point})
                  .toTensor();
          break;
        case Kind::qlinear:
          y = call(a.activation == Activation::none ? k.linear : k.linear_relu,
                   {x, hwc[s.inputs[0]] ? s.packed_hwc : s.packed, s.scale, s.zero_point})
                  .toTensor();
          break;
        case Kind::qlinear_dynamic:
          y = activate(
              call(k.linear_dynamic,
                   {as_float(x), hwc[s.inputs[0]] ? s.packed_hwc : s.packed, reduce_range_})
                  .toTensor(),
              a.activation);
          break;
        case Kind::qadd: {
          const auto& b = v[s.inputs[1]];
          if (x.is_quantized() && b.is_quantized()) {
            y = call(k.add, {x, b, s.scale, s.zero_point}).toTensor();
          } else {
            y = quantize_codes(as_float(x) + as_float(b), s.scale, s.zero_point, par);
          }
          break;
        }
        case Kind::float_layer: {
          const auto xf = as_float(x);
          if (s.op == Op::conv2d)
            y = activate(std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(s.layer)->forward(xf),
                         a.activation);
          else
            y = activate(std::dynamic_pointer_cast<torch::nn::LinearImpl>(s.layer)->forward(xf),
                         a.activation);
          if (s.requantize) y = quantize_codes(y, s.scale, s.zero_point, par);
          break;
        }
        case Kind::float_op: {
          const auto xf = as_float(x);
          if (s.op == Op::sigmoid)
            y = torch::sigmoid(xf);
          else if (s.op == Op::reparameterize)
            y = xf + torch::randn_like(xf) * torch::exp(0.5 * as_float(v[s.inputs[1]]));
          else
            y = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(s.layer)->forward(xf);
          if (s.requantize) y = quantize_codes(y, s.scale, s.zero_point, par);
          break;
        }
        case Kind::stateless:
          switch (s.op) {
            case Op::relu:
              y = torch::relu(x);
              break;
            case Op::relu6:
              // QNNPACK's quantized hardtanh is wrong in LibTorch 1.13: clip in float.
              y = x.is_quantized() ? quantize_codes(at::hardtanh(x.dequantize(), 0.0, 6.0),
                                                    x.q_scale(), x.q_zero_point(), par)
                                   : at::hardtanh(x, 0.0, 6.0);
              break;
            case Op::max_pool2d:
              y = torch::max_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride}, {0, 0}, {1, 1});
              break;
            case Op::avg_pool2d:
              y = x.is_quantized()
                      ? avg_pool_codes(x, {a.kernel, a.kernel}, {a.stride, a.stride}, par)
                      : torch::avg_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride});
              break;
            case Op::adaptive_avg_pool2d: {
              // Windows of equal size (an output that divides the input) are a
              // plain average pooling; others take LibTorch's quantized kernel.
              const std::int64_t o = a.output_size, h = x.size(2), w = x.size(3);
              y = x.is_quantized() && h % o == 0 && w % o == 0
                      ? avg_pool_codes(x, {h / o, w / o}, {h / o, w / o}, par)
                      : torch::adaptive_avg_pool2d(x, {o, o});
              break;
            }
            case Op::flatten:
              if (s.flatten_hwc && x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                  !x.is_contiguous()) {
                y = x.permute({0, 2, 3, 1}).flatten(1);
                hwc[i] = true;
              } else {
                y = x.contiguous().flatten(1);
              }
              break;
            case Op::dropout:
              y = x;
              break;
            case Op::add:
              y = as_float(x) + as_float(v[s.inputs[1]]);
              break;  // no output qparams
            default:
              QLAB_CHECK(false, std::string("unhandled op ") + to_string(s.op));
          }
          break;
      }
      v[i] = std::move(y);
    }
    std::vector<torch::Tensor> out;
    for (auto o : outputs_) out.push_back(as_float(v[o]));
    return out;
  }

  Mode mode() const override { return Mode::int8; }
  std::vector<std::string> lowered() const override { return lowered_; }
  std::string describe() const override {
    return fmt::format("int8 kernels of LibTorch's {} engine ({} quantization{}), {} threads",
                       info_.name, model_->scheme,
                       fallbacks_.empty()
                           ? std::string()
                           : fmt::format("; in float: {}", fmt::join(fallbacks_, ", ")),
                       threads());
  }

 private:
  std::shared_ptr<const QuantizedModel> model_;
  EngineInfo info_;
  bool reduce_range_;  // dynamic: the activations' runtime grid
  std::vector<Step> steps_;
  std::vector<std::size_t> outputs_;
  std::vector<std::string> fallbacks_;
  std::vector<std::string> lowered_;
};

std::string engine_list() {
  std::vector<std::string> names;
  for (auto e : at::globalContext().supportedQEngines())
    if (e != at::QEngine::NoQEngine) names.push_back(c10::toString(e));
  return names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

Schema AtenInt8Backend::options() const {
  Schema s;
  s.integer("threads", 0, "intra-op threads for training and inference (0: one per core)", 0, 1024);
  s.string("reduce_range", "auto",
           "8-bit activations on 7 bits: auto (where the CPU's int8 kernels sum pairs in 16 bits), "
           "on, off",
           {"auto", "on", "off"});
  return s;
}

Availability AtenInt8Backend::availability() const {
  for (auto e : at::globalContext().supportedQEngines())
    if (e == info_.engine) return {};
  return {false, fmt::format("this LibTorch ({}) has no {} quantized engine; its engines are: {}. "
                             "Build qlab against a LibTorch that has it (README: Building against "
                             "another LibTorch)",
                             TORCH_VERSION, c10::toString(info_.engine), engine_list())};
}

void AtenInt8Backend::require_available() const {
  const auto a = availability();
  if (!a.available)
    throw Error(fmt::format("backend '{}' is unavailable: {}", info_.name, a.reason));
}

bool AtenInt8Backend::supports(Op op, Mode mode) const {
  if (!availability().available) return false;
  if (mode == Mode::fp32 || mode == Mode::simulated) return true;
  return mode == Mode::int8 && int8_op(op);
}

void AtenInt8Backend::configure(const Options& opts) {
  require_available();
  set_threads(static_cast<int>(opts.get<std::int64_t>("threads")));
  range_ = parse_range_choice(opts.get<std::string>("reduce_range"));
  at::globalContext().setQEngine(info_.engine);
}

EngineConstraints AtenInt8Backend::constraints() const {
  const CpuPath path = info_.engine == at::QEngine::ONEDNN ? onednn_path() : cpu_path();
  return engine_constraints(info_.engine, path, range_);
}

std::unique_ptr<Executable> AtenInt8Backend::lower(GraphModule module) const {
  return float_executable(std::move(module));
}

std::unique_ptr<Executable> AtenInt8Backend::lower(
    std::shared_ptr<const QuantizedModel> model) const {
  require_available();
  if (!model->int8())
    return simulated_executable(model, "int8 kernels take 8-bit weights and activations only");
  return std::make_unique<Int8Executable>(std::move(model), info_, constraints().reduce_range);
}

}  // namespace qlab::int8
