#include "plugin/onednn_float.hpp"

#include <qlab/quant/passes.hpp>
#include <qlab/runtime.hpp>

#include <fmt/format.h>

#ifdef QLAB_HAVE_DNNL
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#endif

namespace qlab {

#ifndef QLAB_HAVE_DNNL

std::unique_ptr<Executable> onednn_float_executable(const GraphModule&, std::string& why) {
  why = "qlab was built without oneDNN (libdnnl-dev)";
  return nullptr;
}

#else

namespace {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;
constexpr auto kInference = dnnl::prop_kind::forward_inference;

// A graph node's value while a plan is built: its memory, and whether a
// flatten has made a 4-D memory logically 2-D (a linear reads it as is).
struct Value {
  memory mem;
  bool flattened = false;
};

struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
};

// The primitives for one batch size, with their prepacked weights.
// Activations and primitives' scratchpads are allocated for each run, not
// held between runs: the memory metric then sees them as it sees LibTorch's
// temporaries, and an idle executable holds only weights.
struct Plan {
  memory input;  // the caller's batch; its handle is set at every run
  std::vector<Step> steps;
  std::vector<memory> activations;
  std::vector<memory> scratchpads;  // all in one region: steps run one at a time
  std::size_t scratchpad_bytes = 0;
  struct Output {
    dnnl::reorder to_plain;
    memory::desc plain;
    std::vector<std::int64_t> shape;  // the torch tensor's
    memory from;
  };
  std::vector<Output> outputs;
  std::vector<std::string> lowered;  // per node: the primitive's implementation
};

struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

dnnl::post_ops activation_post_ops(Activation a) {
  dnnl::post_ops ops;
  if (a == Activation::relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  if (a == Activation::relu6) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
  return ops;
}

const char* activation_suffix(Activation a) {
  return a == Activation::relu ? " + relu" : a == Activation::relu6 ? " + relu6" : "";
}

class PlanBuilder {
 public:
  PlanBuilder(const GraphModule& module, const dnnl::engine& engine, dnnl::stream& stream)
      : module_(module), graph_(module->graph()), engine_(engine), stream_(stream) {}

  Plan build(const std::vector<std::int64_t>& batch_shape) {
    Plan plan;
    plan_ = &plan;
    for (const auto& n : graph_.nodes()) lower(n, batch_shape);
    for (const auto& name : graph_.outputs()) {
      const Value& v = values_.at(name);
      const auto dims = v.mem.get_desc().dims();
      Plan::Output out;
      out.shape.assign(dims.begin(), dims.end());
      out.plain = memory::desc(dims, kF32, dims.size() == 4 ? Tag::nchw : Tag::nc);
      if (v.flattened) out.shape = {dims[0], dims[1] * dims[2] * dims[3]};
      out.to_plain = dnnl::reorder(
          dnnl::reorder::primitive_desc(engine_, v.mem.get_desc(), engine_, out.plain));
      out.from = v.mem;
      plan.outputs.push_back(std::move(out));
    }
    return plan;
  }

 private:
  void lower(const Node& n, const std::vector<std::int64_t>& batch_shape) {
    const Attrs& a = n.attrs;
    switch (n.op) {
      case Op::input: {
        const Dims dims(batch_shape.begin(), batch_shape.end());
        if (dims.size() != 4 && dims.size() != 2)
          throw Unsupported(fmt::format("a {}-D input", dims.size()));
        plan_->input =
            memory({dims, kF32, dims.size() == 4 ? Tag::nchw : Tag::nc}, engine_, DNNL_MEMORY_NONE);
        values_[n.name] = {plan_->input, false};
        return;
      }
      case Op::conv2d:
        return conv(n);
      case Op::linear:
        return linear(n);
      case Op::relu:
        return eltwise(n, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      case Op::relu6:
        return eltwise(n, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
      case Op::sigmoid:
        return eltwise(n, dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
      case Op::max_pool2d:
        return pool(n, dnnl::algorithm::pooling_max, a.kernel, a.stride);
      case Op::avg_pool2d:
        return pool(n, dnnl::algorithm::pooling_avg_include_padding, a.kernel, a.stride);
      case Op::adaptive_avg_pool2d: {
        const auto dims = input(n, 0).mem.get_desc().dims();
        if (dims.size() != 4 || dims[2] % a.output_size || dims[3] % a.output_size ||
            dims[2] != dims[3])
          throw Unsupported("adaptive average pooling onto a size that does not divide the map");
        const auto k = dims[2] / a.output_size;
        return pool(n, dnnl::algorithm::pooling_avg_exclude_padding, k, k);
      }
      case Op::flatten: {
        Value v = input(n, 0);
        v.flattened = v.flattened || v.mem.get_desc().dims().size() == 4;
        values_[n.name] = v;
        return;
      }
      case Op::dropout:
        values_[n.name] = input(n, 0);
        return;
      case Op::add:
        return add(n);
      default:
        throw Unsupported(fmt::format("{} ({})", to_string(n.op), n.name));
    }
  }

  const Value& input(const Node& n, std::size_t i) const { return values_.at(n.inputs.at(i)); }

  // An activation's memory; its buffer is set at every run.
  memory activation(const memory::desc& md) {
    memory m(md, engine_, DNNL_MEMORY_NONE);
    plan_->activations.push_back(m);
    return m;
  }

  // The primitive's scratchpad: every step's shares one region.
  void add_scratchpad(const memory::desc& md, std::unordered_map<int, memory>& args) {
    if (md.get_size() == 0) return;
    memory m(md, engine_, DNNL_MEMORY_NONE);
    plan_->scratchpads.push_back(m);
    plan_->scratchpad_bytes = std::max(plan_->scratchpad_bytes, md.get_size());
    args[DNNL_ARG_SCRATCHPAD] = m;
  }

  static dnnl::primitive_attr user_scratchpad() {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
  }

  // `v`'s memory in layout `want`, through a reorder step when it differs.
  memory in_layout(const Value& v, const memory::desc& want) {
    if (v.mem.get_desc() == want) return v.mem;
    memory out = activation(want);
    plan_->steps.push_back(
        {dnnl::reorder(v.mem, out), {{DNNL_ARG_FROM, v.mem}, {DNNL_ARG_TO, out}}});
    return out;
  }

  // A parameter copied once into the layout its primitive chose.
  memory packed(const torch::Tensor& t, const Dims& dims, Tag tag, const memory::desc& want) {
    auto plain = t.detach().to(torch::kFloat).contiguous();
    memory user({dims, kF32, tag}, engine_, plain.data_ptr());
    memory out(want, engine_);
    dnnl::reorder(user, out).execute(stream_, user, out);
    stream_.wait();
    return out;
  }

  template <class Primitive, class PrimitiveDesc>
  void add_step(const Node& n, const PrimitiveDesc& pd, std::unordered_map<int, memory> args,
                const memory& dst, const std::string& what) {
    add_scratchpad(pd.scratchpad_desc(), args);
    plan_->steps.push_back({Primitive(pd), std::move(args)});
    values_[n.name] = {dst, false};
    plan_->lowered.push_back(fmt::format("{}: oneDNN {}", n.name, what));
  }

  // A conv or linear step: its source reordered if need be, its weight and
  // bias packed into the layouts `pd` chose.
  template <class Primitive, class PrimitiveDesc>
  void add_weighted(const Node& n, const Value& x, const PrimitiveDesc& pd,
                    const torch::Tensor& weight, const torch::Tensor& bias, const Dims& w_dims,
                    Tag w_tag, const char* kind) {
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, in_layout(x, pd.src_desc())},
        {DNNL_ARG_WEIGHTS, packed(weight, w_dims, w_tag, pd.weights_desc())}};
    if (bias.defined()) args[DNNL_ARG_BIAS] = packed(bias, {n.attrs.out}, Tag::x, pd.bias_desc());
    memory dst = activation(pd.dst_desc());
    args[DNNL_ARG_DST] = dst;
    add_step<Primitive>(
        n, pd, std::move(args), dst,
        fmt::format("{} {}{}", kind, pd.impl_info_str(), activation_suffix(n.attrs.activation)));
  }

  // Seconds one run of `pd` takes on scratch data (best of three), with the
  // reorder its source needs from `src`.
  double seconds(const dnnl::convolution_forward::primitive_desc& pd, const memory::desc& src) {
    std::unordered_map<int, memory> args;
    for (int arg :
         {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD}) {
      const auto md = pd.query_md(dnnl::query::exec_arg_md, arg);
      if (md.get_size() == 0) continue;
      memory m(md, engine_);
      std::memset(m.get_data_handle(), 0, md.get_size());
      args[arg] = m;
    }
    const dnnl::convolution_forward primitive(pd);
    std::optional<dnnl::reorder> reorder;
    memory from(src, engine_);
    if (src != pd.src_desc()) reorder = dnnl::reorder(from, args[DNNL_ARG_SRC]);
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      if (reorder) reorder->execute(stream_, from, args[DNNL_ARG_SRC]);
      primitive.execute(stream_, args);
      stream_.wait();
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  }

  dnnl::convolution_forward::primitive_desc fastest(
      const std::vector<dnnl::convolution_forward::primitive_desc>& candidates,
      const memory::desc& src) {
    std::size_t best = 0;
    double best_seconds = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < candidates.size(); ++i)
      if (const double t = seconds(candidates[i], src); t < best_seconds) {
        best = i;
        best_seconds = t;
      }
    return candidates[best];
  }

  void conv(const Node& n) {
    const Attrs& a = n.attrs;
    const Value& x = input(n, 0);
    if (x.flattened) throw Unsupported("a conv2d after flatten");
    const auto src_dims = x.mem.get_desc().dims();
    const auto& layer = dynamic_cast<torch::nn::Conv2dImpl&>(*module_->layer(n.name));
    const auto out_hw = [&](std::int64_t size) {
      return (size + 2 * a.padding - a.kernel) / a.stride + 1;
    };
    const Dims dst_dims{src_dims[0], a.out, out_hw(src_dims[2]), out_hw(src_dims[3])};
    const Dims w_dims = a.groups == 1
                            ? Dims{a.out, a.in, a.kernel, a.kernel}
                            : Dims{a.groups, a.out / a.groups, a.in / a.groups, a.kernel, a.kernel};
    const Tag w_tag = a.groups == 1 ? Tag::oihw : Tag::goihw;
    const memory::desc any_w(w_dims, kF32, Tag::any), bias_md({a.out}, kF32, Tag::x);
    const Dims stride{a.stride, a.stride}, pad{a.padding, a.padding};
    dnnl::primitive_attr attr = user_scratchpad();
    attr.set_post_ops(activation_post_ops(a.activation));
    const auto pd_for = [&](dnnl::algorithm alg, Tag layout) {
      const memory::desc src(src_dims, kF32, layout), dst(dst_dims, kF32, layout);
      const auto desc =
          layer.bias.defined()
              ? dnnl::convolution_forward::desc(kInference, alg, src, any_w, bias_md, dst, stride,
                                                pad, pad)
              : dnnl::convolution_forward::desc(kInference, alg, src, any_w, dst, stride, pad, pad);
      return dnnl::convolution_forward::primitive_desc(desc, attr, engine_);
    };
    // Which implementation is fastest depends on the shape and the CPU: on
    // this AMD EPYC, VGG16's 64->64 conv at 32x32 took 49 ms in the layout
    // oneDNN picks for itself and 13 ms channels-last, and Winograd
    // F(4x4,3x3) (AVX-512 only) halves MNIST CNN's 32->64 conv but doubles
    // its 1->32 one. So the candidates are timed on the plan's own shape,
    // as cuDNN's benchmark mode does, and the fastest kept. Winograd rounds
    // differently from direct convolution; the tests bound the difference.
    std::vector<dnnl::convolution_forward::primitive_desc> candidates{
        pd_for(dnnl::algorithm::convolution_direct, Tag::any),
        pd_for(dnnl::algorithm::convolution_direct, Tag::nhwc)};
    if (a.kernel == 3 && a.stride == 1 && a.groups == 1) try {
        candidates.push_back(pd_for(dnnl::algorithm::convolution_winograd, Tag::any));
      } catch (const dnnl::error&) {
      }
    add_weighted<dnnl::convolution_forward>(n, x, fastest(candidates, x.mem.get_desc()),
                                            layer.weight, layer.bias, w_dims, w_tag, "convolution");
  }

  void linear(const Node& n) {
    const Attrs& a = n.attrs;
    const Value& x = input(n, 0);
    const auto& layer = dynamic_cast<torch::nn::LinearImpl&>(*module_->layer(n.name));
    const auto src_dims = x.mem.get_desc().dims();
    // After a flatten the weight is read as {out, C, H, W}, matching the
    // 4-D source in whatever layout the conv before it left it.
    const bool spatial = src_dims.size() == 4;
    if (spatial && !x.flattened) throw Unsupported("a linear on a 4-D map");
    const Dims w_dims =
        spatial ? Dims{a.out, src_dims[1], src_dims[2], src_dims[3]} : Dims{a.out, src_dims[1]};
    const Tag w_tag = spatial ? Tag::oihw : Tag::oi;
    const memory::desc any_w(w_dims, kF32, Tag::any), dst_md({src_dims[0], a.out}, kF32, Tag::nc),
        bias_md({a.out}, kF32, Tag::x);
    dnnl::primitive_attr attr = user_scratchpad();
    attr.set_post_ops(activation_post_ops(a.activation));
    const auto pd_for = [&](const memory::desc& src) {
      const auto desc =
          layer.bias.defined()
              ? dnnl::inner_product_forward::desc(kInference, src, any_w, bias_md, dst_md)
              : dnnl::inner_product_forward::desc(kInference, src, any_w, dst_md);
      return dnnl::inner_product_forward::primitive_desc(desc, attr, engine_);
    };
    // The source as it is, else in the layout the primitive asks for.
    dnnl::inner_product_forward::primitive_desc pd;
    try {
      pd = pd_for(x.mem.get_desc());
    } catch (const dnnl::error&) {
      pd = pd_for(memory::desc(src_dims, kF32, Tag::any));
    }
    add_weighted<dnnl::inner_product_forward>(n, x, pd, layer.weight, layer.bias, w_dims, w_tag,
                                              "inner product");
  }

  void eltwise(const Node& n, dnnl::algorithm alg, float alpha, float beta) {
    const Value& x = input(n, 0);
    const dnnl::eltwise_forward::primitive_desc pd(
        dnnl::eltwise_forward::desc(kInference, alg, x.mem.get_desc(), alpha, beta),
        user_scratchpad(), engine_);
    memory dst = activation(pd.dst_desc());
    add_step<dnnl::eltwise_forward>(
        n, pd, {{DNNL_ARG_SRC, x.mem}, {DNNL_ARG_DST, dst}}, dst,
        fmt::format("eltwise {} {}", to_string(n.op), pd.impl_info_str()));
    values_[n.name].flattened = x.flattened;
  }

  void pool(const Node& n, dnnl::algorithm alg, std::int64_t kernel, std::int64_t stride) {
    const Value& x = input(n, 0);
    const auto src = x.mem.get_desc();
    const auto d = src.dims();
    if (x.flattened || d.size() != 4) throw Unsupported("pooling a flattened map");
    const Dims dst_dims{d[0], d[1], (d[2] - kernel) / stride + 1, (d[3] - kernel) / stride + 1};
    // The right padding that makes oneDNN's output size PyTorch's (floor).
    const Dims pad_r{(dst_dims[2] - 1) * stride + kernel - d[2],
                     (dst_dims[3] - 1) * stride + kernel - d[3]};
    const dnnl::pooling_forward::primitive_desc pd(
        dnnl::pooling_forward::desc(kInference, alg, src, memory::desc(dst_dims, kF32, Tag::any),
                                    {stride, stride}, {kernel, kernel}, {0, 0}, pad_r),
        user_scratchpad(), engine_);
    memory dst = activation(pd.dst_desc());
    add_step<dnnl::pooling_forward>(
        n, pd, {{DNNL_ARG_SRC, x.mem}, {DNNL_ARG_DST, dst}}, dst,
        fmt::format("pooling {} {}", to_string(n.op), pd.impl_info_str()));
  }

  void add(const Node& n) {
    const Value& a = input(n, 0);
    const Value& b = input(n, 1);
    if (a.flattened != b.flattened) throw Unsupported("adding a flattened and a spatial map");
    const auto md = a.mem.get_desc();
    const dnnl::binary::primitive_desc pd(
        dnnl::binary::desc(dnnl::algorithm::binary_add, md, md, md), user_scratchpad(), engine_);
    memory dst = activation(pd.dst_desc());
    add_step<dnnl::binary>(
        n, pd, {{DNNL_ARG_SRC_0, a.mem}, {DNNL_ARG_SRC_1, in_layout(b, md)}, {DNNL_ARG_DST, dst}},
        dst, fmt::format("binary add {}", pd.impl_info_str()));
    values_[n.name].flattened = a.flattened;
  }

  const GraphModule& module_;
  const Graph& graph_;
  const dnnl::engine& engine_;
  dnnl::stream& stream_;
  Plan* plan_ = nullptr;
  std::map<std::string, Value> values_;
};

class OneDnnFloat final : public Executable {
 public:
  explicit OneDnnFloat(GraphModule fused)
      : module_(std::move(fused)), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    const auto x = batch.to(torch::kCPU, torch::kFloat).contiguous();
    Plan& plan = plan_for(x.sizes().vec());
    plan.input.set_data_handle(x.data_ptr());
    // One allocation per activation, not one buffer for all: glibc serves
    // blocks under 32 MiB from its heap, which keeps freed ones for reuse
    // (set_threads), and maps larger ones afresh, faulting their pages in
    // at every run (VGG16's activations at batch 64 total more).
    std::vector<std::unique_ptr<void, decltype(&std::free)> > buffers;
    const auto allocate = [&](std::size_t bytes) {
      buffers.emplace_back(std::aligned_alloc(64, (bytes + 63) / 64 * 64), &std::free);
      if (!buffers.back()) throw std::bad_alloc();
      return buffers.back().get();
    };
    for (auto& m : plan.activations) m.set_data_handle(allocate(m.get_desc().get_size()));
    if (plan.scratchpad_bytes > 0) {
      void* scratchpad = allocate(plan.scratchpad_bytes);
      for (auto& m : plan.scratchpads) m.set_data_handle(scratchpad);
    }
    for (auto& step : plan.steps) step.primitive.execute(stream_, step.args);
    std::vector<torch::Tensor> outputs;
    for (auto& out : plan.outputs) {
      auto t = torch::empty(out.shape, torch::kFloat);
      memory to(out.plain, engine_, t.data_ptr());
      out.to_plain.execute(stream_, out.from, to);
      outputs.push_back(std::move(t));
    }
    stream_.wait();
    return outputs;
  }
  Mode mode() const override { return Mode::fp32; }
  std::string describe() const override {
    const auto* v = dnnl::version();
    return fmt::format(
        "fp32 on oneDNN {}.{}.{} primitives (weights prepacked, activations fused), "
        "{} threads",
        v->major, v->minor, v->patch, threads());
  }
  std::vector<std::string> lowered() const override {
    // The largest batch's: implementations can differ with the batch size.
    if (plans_.empty()) return {describe()};
    return plans_.rbegin()->second.lowered;
  }

  // Builds the plan of the graph's own input shape at batch 1, so that an
  // op oneDNN cannot lower shows before the first run.
  void check() {
    plan_for([&] {
      auto shape = module_->graph().input_shape();
      shape.insert(shape.begin(), 1);
      return shape;
    }());
  }

 private:
  Plan& plan_for(const std::vector<std::int64_t>& shape) {
    auto it = plans_.find(shape);
    if (it == plans_.end())
      it = plans_.emplace(shape, PlanBuilder(module_, engine_, stream_).build(shape)).first;
    return it->second;
  }

  GraphModule module_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<std::vector<std::int64_t>, Plan> plans_;
};

}  // namespace

std::unique_ptr<Executable> onednn_float_executable(const GraphModule& module, std::string& why) {
  try {
    auto exe = std::make_unique<OneDnnFloat>(fuse(clone_module(module)));
    exe->check();
    return exe;
  } catch (const Unsupported& e) {
    why = std::string("oneDNN lowering has no ") + e.what();
  } catch (const dnnl::error& e) {
    why = fmt::format("oneDNN refused the graph: {}", e.what());
  }
  return nullptr;
}

#endif

}  // namespace qlab
