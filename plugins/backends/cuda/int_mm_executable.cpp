// Values between nodes are float tensors on their grids, as in simulate():
// a layer on int_mm turns its input into codes (exact: the input lies on
// its grid), multiplies, adds the int32 bias, and requantizes onto its
// output grid, which is a float tensor on that grid again.
#include "int_mm.hpp"

#include <qlab/error.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/simulation.hpp>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/version.h>

#define QLAB_HAS_INT_MM \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))

namespace qlab::cuda {

bool has_int_mm() { return QLAB_HAS_INT_MM; }

namespace {

std::int64_t round_up(std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; }

// Zero rows and columns change no product; _int_mm wants M > 16 and K, N
// multiples of 8.
torch::Tensor padded(const torch::Tensor& t, std::int64_t rows, std::int64_t cols) {
  if (t.size(0) == rows && t.size(1) == cols) return t;
  return at::constant_pad_nd(t, {0, cols - t.size(1), 0, rows - t.size(0)}, 0);
}

}  // namespace

torch::Tensor int_mm(const torch::Tensor& a, const torch::Tensor& b) {
  QLAB_CHECK(a.scalar_type() == torch::kInt8 && b.scalar_type() == torch::kInt8 && a.dim() == 2 &&
                 b.dim() == 2 && a.size(1) == b.size(0),
             "int_mm takes int8 matrices [M, K] and [K, N]");
#if QLAB_HAS_INT_MM
  if (a.is_cuda()) {
    const std::int64_t m = a.size(0), n = b.size(1);
    const std::int64_t k = round_up(a.size(1), 8);
    const auto out =
        at::_int_mm(padded(a, std::max<std::int64_t>(m, 17), k), padded(b, k, round_up(n, 8)));
    return out.narrow(0, 0, m).narrow(1, 0, n);
  }
#endif
  // int32 sums of int8 products are exact below K = 2^31 / 2^14.
  return at::mm(a.to(torch::kInt32), b.to(torch::kInt32));
}

namespace {

// A conv2d (groups 1) or linear layer on int_mm.
struct IntLayer {
  Op op;
  Attrs attrs;
  // Padded with zeros to K and N multiples of 8 once, not at each call.
  torch::Tensor weight_t;     // int8 [K, N]: the codes, transposed
  torch::Tensor offset;       // int32 [N]: the bias codes, and the input code shift times
                              // each column's sum
  torch::Tensor multiplier;   // float32 [N]: s_in * s_w / s_out
  std::int64_t channels = 0;  // N before padding
  double in_scale = 1;
  std::int64_t in_shift = 0;  // x / s_in minus this is the input's int8 code
  double out_scale = 1;
  std::int64_t out_zero_point = 0, lo = 0, hi = 255;  // the output codes, clamped to [lo, hi]
};

// The grid reaching layer node `n`.
const QParams& input_grid(const QuantizedModel& m, const Node& n) {
  const QParams* grid = m.input_grid(n.name);
  QLAB_CHECK(grid, "int_mm: layer " + n.name + " has no input grid");
  return *grid;
}

// Whether the layer can run on int_mm, and why not.
std::string int_mm_misfit(const Node& n) {
  if (n.op == Op::conv2d && n.attrs.groups != 1)
    return fmt::format("a grouped convolution ({} groups) has no int_mm lowering", n.attrs.groups);
  return "";
}

IntLayer int_layer(const QuantizedModel& m, const Node& n, const QLayer& l, torch::Device device) {
  const QParams& in = input_grid(m, n);
  const QParams& out = m.activations.at(n.name);
  const Int8Codes c = int8_codes(l);
  const std::int64_t channels = c.codes.size(0);
  const torch::Tensor w = c.codes.reshape({channels, -1});  // [N, K]
  IntLayer L;
  L.op = n.op;
  L.attrs = n.attrs;
  L.in_scale = in.scale.item<double>();
  L.out_scale = out.scale.item<double>();
  L.out_zero_point = out.zero_point.item<std::int64_t>();
  L.lo = out.qmin;
  L.hi = out.qmax;
  // An input code q in [qmin, qmax] stands for x / s_in = q - z. As int8,
  // a = q - qmin - 128 = x / s_in - shift with shift = qmin + 128 - z; so
  // sum (x / s_in) w = sum a w + shift * sum w, and the last term joins the
  // bias.
  L.in_shift = in.qmin + 128 - in.zero_point.item<std::int64_t>();
  torch::Tensor offset = w.to(torch::kInt32).sum(1).mul(L.in_shift).to(torch::kInt32);
  if (l.bias.defined()) offset += int32_bias(l, L.in_scale).codes;
  const torch::Tensor acc_scale = c.scale.to(torch::kFloat32).mul(static_cast<float>(L.in_scale));
  L.multiplier = acc_scale.to(torch::kFloat64).div(L.out_scale).to(torch::kFloat32);
  if (L.multiplier.numel() == 1) L.multiplier = L.multiplier.expand({channels}).contiguous();
  // A fused ReLU clamps at value 0, ReLU6 at 6 too: at codes, since
  // rounding is monotone.
  if (n.attrs.activation != Activation::none) L.lo = std::max(L.lo, L.out_zero_point);
  if (n.attrs.activation == Activation::relu6)
    L.hi = std::min<std::int64_t>(
        L.hi, static_cast<std::int64_t>(std::nearbyint(6.0 / L.out_scale)) + L.out_zero_point);
  L.channels = channels;
  const std::int64_t k = round_up(w.size(1), 8), n8 = round_up(channels, 8);
  L.weight_t = padded(w.t().contiguous(), k, n8).to(device);
  L.offset = at::constant_pad_nd(offset, {0, n8 - channels}, 0).to(device);
  L.multiplier = at::constant_pad_nd(L.multiplier, {0, n8 - channels}, 0).to(device);
  return L;
}

torch::Tensor run_int_layer(const IntLayer& L, const torch::Tensor& x) {
  const auto& a = L.attrs;
  const std::int64_t batch = x.size(0);
  torch::Tensor cols = x;  // [M, K]
  std::int64_t h = 0, w = 0;
  if (L.op == Op::conv2d) {
    h = (x.size(2) + 2 * a.padding - a.kernel) / a.stride + 1;
    w = (x.size(3) + 2 * a.padding - a.kernel) / a.stride + 1;
    if (a.kernel == 1 && a.stride == 1 && a.padding == 0)
      cols = x.permute({0, 2, 3, 1}).reshape({-1, x.size(1)});
    else  // zero padding is the input's zero point, as in int8 kernels
      cols =
          at::im2col(x, {a.kernel, a.kernel}, {1, 1}, {a.padding, a.padding}, {a.stride, a.stride})
              .transpose(1, 2)
              .reshape({batch * h * w, -1});
  }
  torch::Tensor codes =
      cols.div(L.in_scale).round_().sub_(static_cast<double>(L.in_shift)).to(torch::kInt8);
  codes = padded(codes, codes.size(0), L.weight_t.size(0));
  const torch::Tensor acc = int_mm(codes, L.weight_t).add_(L.offset);
  torch::Tensor y = acc.to(torch::kFloat32)
                        .mul_(L.multiplier)
                        .round_()
                        .add_(static_cast<double>(L.out_zero_point))
                        .clamp_(static_cast<double>(L.lo), static_cast<double>(L.hi))
                        .sub_(static_cast<double>(L.out_zero_point))
                        .mul_(L.out_scale)
                        .narrow(1, 0, L.channels);
  if (L.op == Op::conv2d) y = y.reshape({batch, h, w, -1}).permute({0, 3, 1, 2}).contiguous();
  return y;
}

class IntMmExecutable final : public Executable {
 public:
  IntMmExecutable(std::shared_ptr<const QuantizedModel> model, torch::Device device)
      : model_(std::move(model)),
        device_(device),
        weights_(model_->dequantized_module()),
        hook_(simulation_hook(*model_)) {
    QLAB_CHECK(model_->scheme == Scheme::static_ && model_->int8(),
               "int_mm_executable takes a static model on int8 grids");
    const auto& nodes = model_->graph().nodes();
    layers_.resize(nodes.size());
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const Node& n = nodes[i];
      index[n.name] = i;
      std::vector<std::size_t> in;
      for (const auto& name : n.inputs) in.push_back(index.at(name));
      inputs_.push_back(std::move(in));
      modules_.push_back(weights_->layer(n.name).get());
      const auto l = model_->layers.find(n.name);
      if (l == model_->layers.end()) {
        lowered_.push_back(fmt::format("{}: {} in fp32, then onto its grid as simulate() does",
                                       n.name, op_info(n.op).name));
      } else if (auto why = int_mm_misfit(n); !why.empty()) {
        simulated_.push_back(n.name);
        lowered_.push_back(fmt::format("{}: simulated in fp32 ({})", n.name, why));
        add_bias_as_int8_kernels_do(n, l->second);
      } else {
        layers_[i] = std::make_unique<IntLayer>(int_layer(*model_, n, l->second, device_));
        on_int_mm_.push_back(n.name);
        lowered_.push_back(
            fmt::format("{}: int8 x int8 -> int32 on {}{}, requantized -> {}-bit grid", n.name,
                        kernel_name(), n.op == Op::conv2d && n.attrs.kernel > 1 ? " (im2col)" : "",
                        model_->activations.at(n.name).bits));
      }
    }
    for (const auto& o : model_->graph().output_nodes()) outputs_.push_back(index.at(o));
    weights_->to(device_);
  }

  std::vector<torch::Tensor> run(const torch::Tensor& batch) override {
    torch::NoGradGuard no_grad;
    const auto& nodes = model_->graph().nodes();
    std::vector<torch::Tensor> v(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (layers_[i]) {
        v[i] = run_int_layer(*layers_[i], v[inputs_[i].at(0)]);
        continue;
      }
      const Node& n = nodes[i];
      OpCall call{n.attrs, {}, modules_[i], {}, false};
      if (inputs_[i].empty()) call.inputs.push_back(batch.to(device_, torch::kFloat32));
      for (auto k : inputs_[i]) call.inputs.push_back(v[k]);
      v[i] = hook_(i, op_info(n.op).forward(call));
    }
    std::vector<torch::Tensor> out;
    for (auto o : outputs_) out.push_back(v[o].to(torch::kCPU));
    return out;
  }

  Mode mode() const override { return simulated_.empty() ? Mode::int8 : Mode::simulated; }
  std::vector<std::string> lowered() const override { return lowered_; }
  std::string describe() const override {
    const std::string where =
        device_.is_cuda() ? fmt::format("CUDA device {}", device_.index()) : std::string("the CPU");
    if (simulated_.empty())
      return fmt::format("int8 on {}: every quantized layer on {} ({}), the rest in fp32 on grids",
                         where, kernel_name(), model_->widths());
    return fmt::format(
        "fake-quant simulation in fp32 on {} for {}, which have no int8 kernel there; {} on {} "
        "({})",
        where, fmt::join(simulated_, ", "), fmt::join(on_int_mm_, ", "), kernel_name(),
        model_->widths());
  }

 private:
  // A simulated layer adds its bias as int32 codes, as an int8 kernel and
  // the exported ONNX file would, so the model's codes are theirs.
  void add_bias_as_int8_kernels_do(const Node& n, const QLayer& l) {
    torch::NoGradGuard no_grad;
    auto params = weights_->layer(n.name)->named_parameters(false);
    if (auto* bias = params.find("bias"); bias && l.bias.defined()) {
      bias->copy_(int32_bias(l, input_grid(*model_, n).scale.item<double>()).values());
    }
  }

  std::string kernel_name() const {
    return device_.is_cuda() && has_int_mm() ? "at::_int_mm (cuBLASLt)"
                                             : "an exact int32 matrix product (no _int_mm here)";
  }

  std::shared_ptr<const QuantizedModel> model_;
  torch::Device device_;
  GraphModule weights_;  // the float fallbacks' parameters and the simulated layers'
  GraphModuleImpl::NodeHook hook_;
  std::vector<std::unique_ptr<IntLayer>> layers_;  // per node; null: not on int_mm
  std::vector<std::vector<std::size_t>> inputs_;
  std::vector<torch::nn::Module*> modules_;  // per node, in weights_; null for ops without
  std::vector<std::size_t> outputs_;
  std::vector<std::string> lowered_, on_int_mm_, simulated_;
};

}  // namespace

std::unique_ptr<Executable> int_mm_executable(std::shared_ptr<const QuantizedModel> model,
                                              torch::Device device) {
  return std::make_unique<IntMmExecutable>(std::move(model), device);
}

}  // namespace qlab::cuda
