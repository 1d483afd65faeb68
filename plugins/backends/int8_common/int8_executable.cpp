// Lowering a QuantizedModel onto LibTorch's quantized CPU engines.
//
// Activations stay quantized (quint8) from the graph's input to its outputs:
// relu, pooling, flatten and dropout run on quantized tensors and keep their
// input's qparams; conv2d, linear and add requantize to calibrated qparams.
// Ops an engine has no int8 kernel for (batch norm outside a conv, sigmoid)
// dequantize, run in float and requantize, and the description lists them.
// The kernels are reached through the ATen dispatcher by schema name, so the
// same code runs on every LibTorch that still ships them.
//
// Each node becomes a Step of one Kind; kKinds holds, per kind, the kernel
// a report names and the function that runs it, side by side.
//
// Consecutive steps on qlab's own kernels (quantizing, an image or bit
// convolution, pooling), each taking the step before alone, form a
// segment: every thread takes its share of the batch through all of them
// and the threads meet once, at its end, instead of at every step. At
// LeNet's size a step's barrier and cold start cost as much as its work.
// The engines' kernels, which split each call over the threads themselves,
// end a segment.
#include "int8_executable.hpp"

#include "code_kernels.hpp"
#include "image_conv.hpp"

#include <qlab/error.hpp>
#include <qlab/parallel.hpp>
#include <qlab/runtime.hpp>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <map>
#include <mutex>

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

// The layer's weight as a quantized tensor of its int8 codes (int8_codes),
// zero point 0. `hwc_input`: the (C, H, W) map a linear layer's input was
// flattened from; the weight's columns are then put in (h, w, c) order, to
// take the map's channels-last bytes as they lie.
torch::Tensor int8_weight(const QLayer& l, const Shape* hwc_input = nullptr) {
  const QParams& p = l.weight;
  auto [codes, scale] = int8_codes(l);
  if (hwc_input)
    codes = codes.view({codes.size(0), (*hwc_input)[0], (*hwc_input)[1], (*hwc_input)[2]})
                .permute({0, 2, 3, 1})
                .reshape({codes.size(0), -1});
  if (p.per_channel())
    return at::_make_per_channel_quantized_tensor(codes, scale,
                                                  torch::zeros_like(scale, torch::kInt64), p.axis);
  return at::_make_per_tensor_quantized_tensor(codes, scale.item<double>(), 0);
}

// The bias the kernels add: for a static layer (`input`: the grid reaching
// it) its int32 codes (int32_bias), which oneDNN takes as float values and
// QNNPACK rounds to the same codes; for a dynamic one the float bias.
torch::Tensor kernel_bias(const QLayer& l, const QParams* input) {
  if (!l.bias.defined() || !input) return l.bias;
  return int32_bias(l, input->scale.item<double>()).values();
}

// An absent bias is None to the kernels, not an undefined tensor.
c10::IValue bias_of(const QLayer& l, const QParams* input) {
  const torch::Tensor b = kernel_bias(l, input);
  return b.defined() ? c10::IValue(b) : c10::IValue();
}

torch::Tensor as_float(const torch::Tensor& x) { return x.is_quantized() ? x.dequantize() : x; }

// An empty tensor for `batch` samples shaped, typed and laid out as `part`.
torch::Tensor batch_like(const torch::Tensor& part, std::int64_t batch) {
  auto sizes = part.sizes().vec();
  sizes[0] = batch;
  const auto format = part.dim() == 4 && part.is_contiguous(at::MemoryFormat::ChannelsLast)
                          ? at::MemoryFormat::ChannelsLast
                          : at::MemoryFormat::Contiguous;
  return part.is_quantized() ? at::_empty_affine_quantized(sizes, part.options(), part.q_scale(),
                                                           part.q_zero_point(), format)
                             : torch::empty(sizes, part.options().memory_format(format));
}

torch::Tensor activate(torch::Tensor x, Activation a) {
  if (a == Activation::relu) return torch::relu(x);
  if (a == Activation::relu6) return at::hardtanh(x, 0.0, 6.0);
  return x;
}

// In kKinds' order.
enum class Kind {
  input,
  qconv,
  qlinear,
  qlinear_dynamic,
  qadd,
  float_layer,
  float_op,
  stateless,
  own_kernel
};

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
  std::uint8_t qmin = 0, qmax = 255;         // the output grid's codes (7 bits: 0..127)
  std::shared_ptr<torch::nn::Module> layer;  // float fallback
  std::shared_ptr<const LayerKernel> own;    // a backend's own kernel
  std::string done_by;          // a pooling the step before's kernel ran: that step's node
  std::size_t segment_end = 0;  // first step of a segment: one past its last
};

// What one batch's run reads and writes besides the step itself.
struct Run {
  const torch::Tensor& batch;
  std::vector<torch::Tensor> values;  // per step
  std::vector<bool> hwc;              // per step: a flatten's output in (h, w, c) order
  bool parallel;                      // qlab's code kernels on OpenMP threads
  bool reduce_range;
  std::size_t current = 0;

  const torch::Tensor& input(const Step& s, std::size_t k = 0) const {
    return s.inputs.empty() ? batch : values[s.inputs[k]];
  }
  const c10::IValue& weight(const Step& s) const {
    return hwc[s.inputs[0]] ? s.packed_hwc : s.packed;
  }
  torch::Tensor requantized(const Step& s, const torch::Tensor& y) const {
    return s.requantize ? quantize_codes(y, s.scale, s.zero_point, parallel, s.qmin, s.qmax) : y;
  }
  // An engine's output, requantized onto all 256 codes, on the step's grid.
  torch::Tensor on_grid(const Step& s, torch::Tensor y) const {
    if (s.qmin > 0 || s.qmax < 255) clamp_codes_(y, s.qmin, s.qmax, parallel);
    return y;
  }
};

torch::Tensor run_input(const Step& s, Run& r) { return r.requantized(s, r.batch); }

// A fused relu6 runs as relu: the output grid was calibrated on relu6
// outputs, so its top (<= 6) saturates what relu6 would clip.
torch::Tensor run_qconv(const Step& s, Run& r) {
  const auto& k = kernels();
  return r.on_grid(s, call(s.attrs.activation == Activation::none ? k.conv : k.conv_relu,
                           {r.input(s), s.packed, s.scale, s.zero_point})
                          .toTensor());
}

torch::Tensor run_qlinear(const Step& s, Run& r) {
  const auto& k = kernels();
  return r.on_grid(s, call(s.attrs.activation == Activation::none ? k.linear : k.linear_relu,
                           {r.input(s), r.weight(s), s.scale, s.zero_point})
                          .toTensor());
}

torch::Tensor run_qlinear_dynamic(const Step& s, Run& r) {
  const auto y =
      call(kernels().linear_dynamic, {as_float(r.input(s)), r.weight(s), r.reduce_range});
  return activate(y.toTensor(), s.attrs.activation);
}

torch::Tensor run_qadd(const Step& s, Run& r) {
  const auto &a = r.input(s), &b = r.input(s, 1);
  if (a.is_quantized() && b.is_quantized())
    return r.on_grid(s, call(kernels().add, {a, b, s.scale, s.zero_point}).toTensor());
  return r.requantized(s, as_float(a) + as_float(b));
}

// A layer left float, or an op without an integer kernel: its float
// computation from the op table, between a dequantize and a quantize.
torch::Tensor run_in_float(const Step& s, Run& r) {
  OpCall call{s.attrs, {}, s.layer.get(), {}, false};
  for (std::size_t k = 0; k < s.inputs.size(); ++k) call.inputs.push_back(as_float(r.input(s, k)));
  return r.requantized(s, op_info(s.op).forward(call));
}

torch::Tensor run_pool(const Step& s, const torch::Tensor& x, bool parallel) {
  const auto& a = s.attrs;
  if (s.op == Op::max_pool2d)
    return torch::max_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride}, {0, 0}, {1, 1});
  if (s.op == Op::avg_pool2d)
    return x.is_quantized()
               ? avg_pool_codes(x, {a.kernel, a.kernel}, {a.stride, a.stride}, parallel)
               : torch::avg_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride});
  // Windows of equal size (an output that divides the input) are a plain
  // average pooling; others take LibTorch's quantized kernel.
  const std::int64_t o = a.output_size, h = x.size(2), w = x.size(3);
  return x.is_quantized() && h % o == 0 && w % o == 0
             ? avg_pool_codes(x, {h / o, w / o}, {h / o, w / o}, parallel)
             : torch::adaptive_avg_pool2d(x, {o, o});
}

// Ops that keep their input's type: quantized in, quantized out.
torch::Tensor run_stateless(const Step& s, Run& r) {
  const torch::Tensor& x = r.input(s);
  switch (s.op) {
    case Op::relu:
      return torch::relu(x);
    case Op::relu6:
      // QNNPACK's quantized hardtanh is wrong in LibTorch 1.13: clip in float.
      return x.is_quantized() ? quantize_codes(at::hardtanh(x.dequantize(), 0.0, 6.0), x.q_scale(),
                                               x.q_zero_point(), r.parallel)
                              : at::hardtanh(x, 0.0, 6.0);
    case Op::max_pool2d:
    case Op::avg_pool2d:
    case Op::adaptive_avg_pool2d:
      return s.done_by.empty() ? run_pool(s, x, r.parallel) : x;
    case Op::flatten:
      if (s.flatten_hwc && x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
        r.hwc[r.current] = true;
        return x.permute({0, 2, 3, 1}).flatten(1);
      }
      return x.contiguous().flatten(1);
    case Op::dropout:
      return x;
    case Op::add:  // no output qparams
      return as_float(x) + as_float(r.input(s, 1));
    default:
      QLAB_CHECK(false, std::string("unhandled op ") + to_string(s.op));
  }
  return {};
}

torch::Tensor run_own_kernel(const Step& s, Run& r) { return s.own->run(r.input(s), r.parallel); }

// Per kind: the kernel reports name (given whether the step's input is
// quantized), and how it runs.
struct KindInfo {
  std::string (*kernel)(const Step& s, bool quantized_input);
  torch::Tensor (*run)(const Step& s, Run& r);
};

const char* fused(const Step& s, const char* plain, const char* relu) {
  return s.attrs.activation == Activation::none ? plain : relu;
}

const KindInfo kKinds[] = {
    {[](const Step& s, bool) -> std::string { return s.requantize ? "quantize" : "float input"; },
     run_input},
    {[](const Step& s, bool) -> std::string {
       return fused(s, "quantized::conv2d", "quantized::conv2d_relu");
     },
     run_qconv},
    {[](const Step& s, bool) -> std::string {
       return fused(s, "quantized::linear", "quantized::linear_relu");
     },
     run_qlinear},
    {[](const Step&, bool) -> std::string { return "quantized::linear_dynamic"; },
     run_qlinear_dynamic},
    {[](const Step&, bool) -> std::string { return "quantized::add"; }, run_qadd},
    {[](const Step&, bool) -> std::string { return "float layer (dequantize, fp32, requantize)"; },
     run_in_float},
    {[](const Step& s, bool) -> std::string {
       return s.requantize ? "float op (dequantize, fp32, requantize)" : "fp32 op";
     },
     run_in_float},
    {[](const Step& s, bool in_q) -> std::string {
       if (!s.done_by.empty()) return "in " + s.done_by + "'s kernel";
       return !in_q           ? "fp32 op"
              : s.flatten_hwc ? "quantized view in (h, w, c) order"
                              : "quantized tensor op";
     },
     run_stateless},
    {[](const Step& s, bool) -> std::string { return s.own->name; }, run_own_kernel},
};

static_assert(std::size(kKinds) == static_cast<std::size_t>(Kind::own_kernel) + 1,
              "one kKinds entry per Kind, in order");

const KindInfo& info_of(Kind k) { return kKinds[static_cast<std::size_t>(k)]; }

class Int8Executable final : public Executable {
 public:
  Int8Executable(std::shared_ptr<const QuantizedModel> model, const EngineInfo& info,
                 bool reduce_range)
      : model_(std::move(model)), info_(info), reduce_range_(reduce_range) {
    at::globalContext().setQEngine(info_.engine);
    const Graph& g = model_->graph();
    std::map<std::string, std::size_t> index;
    for (const auto& n : g.nodes()) {
      Step s = plan(n);
      for (const auto& in : n.inputs) s.inputs.push_back(index.at(in));
      index[n.name] = steps_.size();
      steps_.push_back(std::move(s));
    }
    plan_channels_last_flatten(g);
    describe_steps(g);
    for (const auto& o : g.output_nodes()) outputs_.push_back(index.at(o));
    plan_segments();
  }

  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    at::globalContext().setQEngine(info_.engine);
    torch::NoGradGuard no_grad;
    Run r = start(batch);
    for (r.current = 0; r.current < steps_.size(); ++r.current) {
      const Step& s = steps_[r.current];
      if (s.segment_end && r.parallel && at::get_num_threads() > 1 &&
          r.input(s).size(0) >= at::get_num_threads())
        run_segment(r);
      else
        r.values[r.current] = info_of(s.kind).run(s, r);
    }
    std::vector<torch::Tensor> out;
    for (auto o : outputs_) out.push_back(as_float(r.values[o]));
    return out;
  }

  // Step `i` alone, its (first) input given.
  torch::Tensor run_step(std::size_t i, const torch::Tensor& input) const {
    at::globalContext().setQEngine(info_.engine);
    torch::NoGradGuard no_grad;
    const Step& s = steps_.at(i);
    Run r = start(input);
    for (auto in : s.inputs) r.values[in] = input;
    r.current = i;
    return info_of(s.kind).run(s, r);
  }
  std::size_t step_of(const std::string& node) const {
    const auto& nodes = model_->graph().nodes();
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].name == node) return i;
    throw Error("no node '" + node + "' in the model");
  }

  Mode mode() const override { return Mode::int8; }
  std::vector<std::string> lowered() const override { return lowered_; }
  std::string describe() const override {
    // Where layers run other than on the engine's int8 kernels.
    std::string elsewhere = fallbacks_.empty()
                                ? std::string()
                                : fmt::format("; in float: {}", fmt::join(fallbacks_, ", "));
    if (!image_layers_.empty())
      elsewhere += fmt::format("; qlab's image convolution for {}", fmt::join(image_layers_, ", "));
    if (!segments_.empty())
      elsewhere += fmt::format("; each thread takes its images through {} in one pass",
                               fmt::join(segments_, ", "));
    if (own_layers_.empty())
      return fmt::format("int8 kernels of LibTorch's {} engine ({} quantization, {}{}), {} threads",
                         info_.name, to_string(model_->scheme), model_->widths(), elsewhere,
                         threads());
    std::string engine = c10::toString(info_.engine);
    std::transform(engine.begin(), engine.end(), engine.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return fmt::format(
        "{}'s own kernels for {}, int8 kernels of LibTorch's {} engine for the rest ({} "
        "quantization, {}{}), {} threads",
        info_.name, fmt::join(own_layers_, ", "), engine, to_string(model_->scheme),
        model_->widths(), elsewhere, threads());
  }

 private:
  // The segment starting at r.current, each thread on its images, its
  // kernels unthreaded; leaves r.current at its last step.
  void run_segment(Run& r) const {
    const std::size_t first = r.current, end = steps_[first].segment_end;
    const torch::Tensor& whole = r.input(steps_[first]);
    torch::Tensor out;
    std::mutex allocating;
    balances_.at(first)->run(whole.size(0), true, [&](std::int64_t begin, std::int64_t stop) {
      torch::NoGradGuard no_grad;  // thread-local, as is a worker's own
      const torch::Tensor images = whole.narrow(0, begin, stop - begin);
      Run mine = start(images);
      mine.parallel = false;
      torch::Tensor y = images;
      for (mine.current = first; mine.current < end; ++mine.current) {
        const Step& s = steps_[mine.current];
        if (!s.inputs.empty()) mine.values[s.inputs[0]] = y;
        y = info_of(s.kind).run(s, mine);
      }
      {
        std::lock_guard<std::mutex> lock(allocating);
        if (!out.defined()) out = batch_like(y, whole.size(0));
      }
      out.narrow(0, begin, stop - begin).copy_(y);
    });
    r.current = end - 1;
    r.values[r.current] = std::move(out);
  }

  // Steps that may run on a share of the batch in a worker thread: qlab's
  // kernels and LibTorch's quantized tensor ops, which keep no state. Not a
  // flatten into (h, w, c) order, which marks the run it is in.
  static bool runs_on_images(const Step& s) {
    if (s.kind == Kind::input || s.kind == Kind::own_kernel) return true;
    return s.kind == Kind::stateless && !s.flatten_hwc && s.op != Op::add;
  }

  // Marks each segment's first step with its end: runs of at least two
  // steps that run on images, each after the first taking the step before
  // it as its one input, which nothing else reads.
  void plan_segments() {
    balances_.resize(steps_.size());
    std::vector<int> readers(steps_.size(), 0);
    for (const auto& s : steps_)
      for (auto in : s.inputs) ++readers[in];
    for (auto o : outputs_) ++readers[o];
    const auto continues = [&](std::size_t i) {
      const Step& s = steps_[i];
      return runs_on_images(s) && s.inputs.size() == 1 && s.inputs[0] == i - 1 &&
             readers[i - 1] == 1;
    };
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      if (!runs_on_images(steps_[i]) || steps_[i].inputs.size() > 1) continue;
      std::size_t end = i + 1;
      while (end < steps_.size() && continues(end)) ++end;
      if (end - i >= 2) {
        steps_[i].segment_end = end;
        balances_[i] = std::make_unique<SpeedBalanced>();
        segments_.push_back(fmt::format("{} .. {}", model_->graph().nodes()[i].name,
                                        model_->graph().nodes()[end - 1].name));
      }
      i = end - 1;
    }
  }

  // A run of `batch` before its first step.
  Run start(const torch::Tensor& batch) const {
    return {batch, std::vector<torch::Tensor>(steps_.size()), std::vector<bool>(steps_.size()),
            info_.parallel_code_kernels, reduce_range_};
  }

  // A node's step: its kind, its calibrated output grid, its packed weight.
  Step plan(const Node& n) {
    const bool is_static = model_->scheme == Scheme::static_;
    Step s;
    s.op = n.op;
    s.attrs = n.attrs;
    if (auto it = model_->activations.find(n.name); is_static && it != model_->activations.end()) {
      // A b-bit grid [qmin, qmax] is the uint8 codes [0, qmax - qmin], its
      // zero point shifted alike; outputs are clamped to those codes.
      const QParams& a = it->second;
      s.requantize = true;
      s.scale = a.scale.item<double>();
      s.zero_point = a.zero_point.item<std::int64_t>() - a.qmin;
      s.qmin = 0;
      s.qmax = static_cast<std::uint8_t>(a.qmax - a.qmin);
    }
    const auto layer = model_->layers.find(n.name);
    const bool quantized = layer != model_->layers.end();
    const auto& k = kernels();
    if (n.op == Op::input) {
      s.kind = Kind::input;
    } else if (auto own = quantized && is_static ? own_kernel(n, layer->second, s) : nullptr) {
      s.kind = Kind::own_kernel;
      s.own = std::move(own);
    } else if (n.op == Op::conv2d && quantized && is_static) {
      s.kind = Kind::qconv;
      const std::vector<std::int64_t> stride{n.attrs.stride, n.attrs.stride},
          padding{n.attrs.padding, n.attrs.padding}, dilation{1, 1};
      s.packed =
          call(k.conv_prepack, {int8_weight(layer->second), bias_of(layer->second, input_grid(n)),
                                stride, padding, dilation, n.attrs.groups});
    } else if (n.op == Op::linear && quantized) {
      s.kind = is_static ? Kind::qlinear : Kind::qlinear_dynamic;
      s.packed = call(k.linear_prepack,
                      {int8_weight(layer->second), bias_of(layer->second, input_grid(n))});
    } else if (op_info(n.op).weighted) {
      s.kind = Kind::float_layer;
      fallbacks_.push_back(n.name);
    } else if (n.op == Op::add && s.requantize) {
      s.kind = Kind::qadd;
    } else {
      // Ops without int8 kernels run in float under either scheme; only the
      // static scheme, which requantizes around them, lists them as fallbacks.
      s.kind = has_int8_kernel(n.op) ? Kind::stateless : Kind::float_op;
      if (s.kind == Kind::float_op && is_static) fallbacks_.push_back(n.name);
      if (auto it = pooled_by_.find(n.name); it != pooled_by_.end()) s.done_by = it->second;
    }
    if (s.kind == Kind::float_layer || s.kind == Kind::float_op)
      s.layer = model_->float_module->layer(n.name);
    return s;
  }

  // The calibrated grid reaching a node's input; null under the dynamic
  // scheme, or where the input stays float.
  const QParams* input_grid(const Node& n) const {
    return model_->scheme == Scheme::static_ ? model_->input_grid(n.name) : nullptr;
  }

  // A kernel other than the engine's for a static layer: the backend's own,
  // if it takes the layer, else qlab's image convolution, if that does.
  std::shared_ptr<const LayerKernel> own_kernel(const Node& n, const QLayer& layer, const Step& s) {
    if (!s.requantize) return nullptr;
    const QParams* in = input_grid(n);
    if (!in) return nullptr;
    const LayerOffer offer{n, layer, *in, kernel_bias(layer, in), s.scale, s.zero_point, s.qmax};
    std::optional<LayerKernel> k;
    if (info_.own_kernels) k = info_.own_kernels(offer);
    if (k) {
      own_layers_.push_back(n.name);
    } else if (info_.image_convs) {
      const Node* pool = average_2x2_after(n);
      if (pool && (k = image_conv_for(offer, std::nullopt, true)))
        pooled_by_[pool->name] = n.name;
      else
        k = image_conv_for(offer);
      if (k) image_layers_.push_back(n.name);
    }
    return k ? std::make_shared<const LayerKernel>(std::move(*k)) : nullptr;
  }

  // The 2x2 average pooling at stride 2 that alone reads node n's output,
  // if one does: the image convolution runs it too, on each image's map
  // while it is in L1.
  const Node* average_2x2_after(const Node& n) const {
    const Graph& g = model_->graph();
    const auto& outs = g.outputs();
    if (std::find(outs.begin(), outs.end(), n.name) != outs.end()) return nullptr;
    const Node* reader = nullptr;
    for (const auto& m : g.nodes())
      for (const auto& in : m.inputs)
        if (in == n.name) {
          if (reader) return nullptr;
          reader = &m;
        }
    if (!reader || reader->op != Op::avg_pool2d) return nullptr;
    const Attrs& a = reader->attrs;
    return a.kernel == 2 && a.stride == 2 && a.padding == 0 ? reader : nullptr;
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
            call(kernels().linear_prepack,
                 {int8_weight(layer, &map), bias_of(layer, input_grid(g.nodes()[c]))});
      }
    }
  }

  // What each node runs and produces, known before any data flows. Static
  // conv, linear and add requantize to calibrated qparams; the stateless ops
  // keep whatever their input is.
  void describe_steps(const Graph& g) {
    std::vector<bool> quantized_out(steps_.size(), false);
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      const bool in_q = !s.inputs.empty() && quantized_out[s.inputs[0]];
      quantized_out[i] = s.requantize || (s.kind == Kind::stateless && in_q);
      lowered_.push_back(fmt::format("{}: {} -> {}", g.nodes()[i].name,
                                     info_of(s.kind).kernel(s, in_q),
                                     quantized_out[i] ? "quint8" : "float"));
    }
  }

  std::shared_ptr<const QuantizedModel> model_;
  EngineInfo info_;
  bool reduce_range_;  // dynamic: the activations' runtime grid
  std::vector<Step> steps_;
  std::vector<std::size_t> outputs_;
  std::vector<std::string> fallbacks_;
  std::vector<std::string> own_layers_;
  std::vector<std::string> image_layers_;         // on qlab's image convolution
  std::map<std::string, std::string> pooled_by_;  // pooling node -> the conv whose kernel runs it
  std::vector<std::string> lowered_;
  std::vector<std::string> segments_;  // "first .. last" node of each
  // Per segment (at its first step): its images split by each thread's speed.
  std::vector<std::unique_ptr<SpeedBalanced>> balances_;
};

}  // namespace

bool has_int8_kernel(Op op) { return op_info(op).integer_kernel; }

std::unique_ptr<Executable> int8_executable(std::shared_ptr<const QuantizedModel> model,
                                            const EngineInfo& info, bool reduce_range) {
  return std::make_unique<Int8Executable>(std::move(model), info, reduce_range);
}

LayerKernel lowered_node(std::shared_ptr<const QuantizedModel> model, const EngineInfo& info,
                         const std::string& node) {
  auto exe = std::make_shared<const Int8Executable>(std::move(model), info, false);
  const std::size_t i = exe->step_of(node);
  return {exe->lowered().at(i),
          [exe, i](const torch::Tensor& x, bool) { return exe->run_step(i, x); }};
}

}  // namespace qlab::int8
