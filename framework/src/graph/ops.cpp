// The op table: everything qlab knows of each op, one row per op, in the
// order of enum Op. The graph, its printer, its module, the quantizers and
// the backends read it; only kernels that compute an op in another way
// (the int8 backends' integer kernels) switch on the op themselves.
#include <qlab/error.hpp>
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>

namespace qlab {
namespace {

using Nn = std::shared_ptr<torch::nn::Module>;

std::int64_t pooled(std::int64_t size, std::int64_t kernel, std::int64_t stride,
                    std::int64_t padding) {
  return (size + 2 * padding - kernel) / stride + 1;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Shape rules: each fills `st` from the input shapes or says why they do not fit.

std::string need_chw(const Shape& in) {
  return in.size() == 3 ? "" : "expected a {C, H, W} feature map";
}

std::string same_shape(const Attrs&, const std::vector<Shape>& in, LayerStats& st) {
  st.output = in[0];
  return "";
}

std::string both_same_shape(const Attrs&, const std::vector<Shape>& in, LayerStats& st) {
  if (in[1] != in[0]) return "the second input has shape " + shape_str(in[1]);
  st.output = in[0];
  return "";
}

std::string conv2d_shape(const Attrs& a, const std::vector<Shape>& in, LayerStats& st) {
  if (auto why = need_chw(in[0]); !why.empty()) return why;
  if (in[0][0] != a.in) return fmt::format("expected {} channels", a.in);
  if (a.groups < 1 || a.in % a.groups || a.out % a.groups)
    return fmt::format("channels not divisible by groups={}", a.groups);
  const auto h = pooled(in[0][1], a.kernel, a.stride, a.padding);
  const auto w = pooled(in[0][2], a.kernel, a.stride, a.padding);
  if (h < 1 || w < 1) return fmt::format("a {0}x{0} kernel does not fit", a.kernel);
  st.output = {a.out, h, w};
  st.params = a.out * (a.in / a.groups) * a.kernel * a.kernel + (a.bias ? a.out : 0);
  st.macs = a.out * (a.in / a.groups) * a.kernel * a.kernel * h * w;
  return "";
}

std::string linear_shape(const Attrs& a, const std::vector<Shape>& in, LayerStats& st) {
  if (in[0].size() != 1 || in[0][0] != a.in)
    return fmt::format("expected {} features (flatten first?)", a.in);
  st.output = {a.out};
  st.params = a.in * a.out + (a.bias ? a.out : 0);
  st.macs = a.in * a.out;
  return "";
}

std::string batch_norm_shape(const Attrs& a, const std::vector<Shape>& in, LayerStats& st) {
  if (auto why = need_chw(in[0]); !why.empty()) return why;
  if (in[0][0] != a.in) return fmt::format("expected {} channels", a.in);
  st.output = in[0];
  st.params = 2 * a.in;
  return "";
}

std::string pool_shape(const Attrs& a, const std::vector<Shape>& in, LayerStats& st) {
  if (auto why = need_chw(in[0]); !why.empty()) return why;
  const auto h = pooled(in[0][1], a.kernel, a.stride, 0);
  const auto w = pooled(in[0][2], a.kernel, a.stride, 0);
  if (h < 1 || w < 1) return fmt::format("a {0}x{0} window does not fit", a.kernel);
  st.output = {in[0][0], h, w};
  return "";
}

std::string adaptive_pool_shape(const Attrs& a, const std::vector<Shape>& in, LayerStats& st) {
  if (auto why = need_chw(in[0]); !why.empty()) return why;
  st.output = {in[0][0], a.output_size, a.output_size};
  return "";
}

std::string flatten_shape(const Attrs&, const std::vector<Shape>& in, LayerStats& st) {
  std::int64_t f = 1;
  for (auto d : in[0]) f *= d;
  st.output = {f};
  return "";
}

// PyTorch's reprs, as print(model) shows them.

// A fused activation prints like PyTorch's intrinsic modules: ConvReLU2d, LinearReLU.
const char* fused(const Attrs& a) {
  switch (a.activation) {
    case Activation::relu:
      return "ReLU";
    case Activation::relu6:
      return "ReLU6";
    case Activation::none:
      break;
  }
  return "";
}

std::string conv2d_repr(const Attrs& a) {
  std::string s = fmt::format("Conv{}2d({}, {}, kernel_size=({}, {}), stride=({}, {})", fused(a),
                              a.in, a.out, a.kernel, a.kernel, a.stride, a.stride);
  if (a.padding) s += fmt::format(", padding=({}, {})", a.padding, a.padding);
  if (a.groups != 1) s += fmt::format(", groups={}", a.groups);
  if (!a.bias) s += ", bias=False";
  return s + ")";
}

std::string linear_repr(const Attrs& a) {
  return fmt::format("Linear{}(in_features={}, out_features={}, bias={})", fused(a), a.in, a.out,
                     a.bias ? "True" : "False");
}

std::string batch_norm_repr(const Attrs& a) {
  return fmt::format("BatchNorm2d({}, eps={}, momentum={}, affine=True, track_running_stats=True)",
                     a.in, a.eps == 1e-5 ? std::string("1e-05") : fmt::format("{}", a.eps),
                     a.momentum);
}

std::string max_pool_repr(const Attrs& a) {
  return fmt::format("MaxPool2d(kernel_size={}, stride={}, padding=0, dilation=1, ceil_mode=False)",
                     a.kernel, a.stride);
}

std::string avg_pool_repr(const Attrs& a) {
  return fmt::format("AvgPool2d(kernel_size={}, stride={}, padding=0)", a.kernel, a.stride);
}

std::string adaptive_pool_repr(const Attrs& a) {
  return fmt::format("AdaptiveAvgPool2d(output_size=({0}, {0}))", a.output_size);
}

std::string dropout_repr(const Attrs& a) {
  return fmt::format("Dropout(p={}, inplace=False)", a.p);
}

// Layers holding parameters, made as PyTorch's own modules so parameter
// names and initialisation match.

Nn conv2d_layer(const Attrs& a) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(a.in, a.out, a.kernel)
                               .stride(a.stride)
                               .padding(a.padding)
                               .groups(a.groups)
                               .bias(a.bias))
      .ptr();
}

Nn linear_layer(const Attrs& a) {
  return torch::nn::Linear(torch::nn::LinearOptions(a.in, a.out).bias(a.bias)).ptr();
}

Nn batch_norm_layer(const Attrs& a) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(a.in).eps(a.eps).momentum(a.momentum))
      .ptr();
}

// The float computations.

torch::Tensor activate(torch::Tensor x, Activation a) {
  switch (a) {
    case Activation::none:
      return x;
    case Activation::relu:
      return torch::relu(x);
    case Activation::relu6:
      return torch::hardtanh(x, 0.0, 6.0);
  }
  return x;
}

torch::Tensor input_forward(const OpCall& c) { return c.inputs[0]; }

// Module is a virtual base of the layer classes: only dynamic_cast reaches them.
torch::Tensor conv2d_forward(const OpCall& c) {
  const auto& a = c.attrs;
  const auto& conv = dynamic_cast<torch::nn::Conv2dImpl&>(*c.layer);
  const torch::Tensor& w = c.weight.defined() ? c.weight : conv.weight;
  return activate(torch::conv2d(c.inputs[0], w, conv.bias, {a.stride, a.stride},
                                {a.padding, a.padding}, {1, 1}, a.groups),
                  a.activation);
}

torch::Tensor linear_forward(const OpCall& c) {
  const auto& fc = dynamic_cast<torch::nn::LinearImpl&>(*c.layer);
  const torch::Tensor& w = c.weight.defined() ? c.weight : fc.weight;
  return activate(torch::linear(c.inputs[0], w, fc.bias), c.attrs.activation);
}

torch::Tensor batch_norm_forward(const OpCall& c) {
  return dynamic_cast<torch::nn::BatchNorm2dImpl&>(*c.layer).forward(c.inputs[0]);
}

torch::Tensor relu_forward(const OpCall& c) { return torch::relu(c.inputs[0]); }
torch::Tensor relu6_forward(const OpCall& c) { return torch::hardtanh(c.inputs[0], 0.0, 6.0); }
torch::Tensor sigmoid_forward(const OpCall& c) { return torch::sigmoid(c.inputs[0]); }

torch::Tensor max_pool_forward(const OpCall& c) {
  const auto& a = c.attrs;
  return torch::max_pool2d(c.inputs[0], {a.kernel, a.kernel}, {a.stride, a.stride}, {0, 0}, {1, 1});
}

torch::Tensor avg_pool_forward(const OpCall& c) {
  const auto& a = c.attrs;
  return torch::avg_pool2d(c.inputs[0], {a.kernel, a.kernel}, {a.stride, a.stride});
}

torch::Tensor adaptive_pool_forward(const OpCall& c) {
  return torch::adaptive_avg_pool2d(c.inputs[0], {c.attrs.output_size, c.attrs.output_size});
}

torch::Tensor flatten_forward(const OpCall& c) { return c.inputs[0].flatten(1); }

torch::Tensor dropout_forward(const OpCall& c) {
  namespace F = torch::nn::functional;
  return F::dropout(c.inputs[0], F::DropoutFuncOptions().p(c.attrs.p).training(c.training));
}

torch::Tensor add_forward(const OpCall& c) { return c.inputs[0] + c.inputs[1]; }

// VAE sampling: mu + eps * exp(logvar / 2), eps ~ N(0, 1).
torch::Tensor reparameterize_forward(const OpCall& c) {
  return c.inputs[0] + torch::randn_like(c.inputs[0]) * torch::exp(0.5 * c.inputs[1]);
}

// op, name, arity, shape, repr, layer, forward, weighted, own grid, rounds
// to its input's grid, integer kernel, fused as.
const std::array<OpInfo, static_cast<std::size_t>(Op::reparameterize) + 1> kOps{{
    {Op::input, "input", 0, same_shape, nullptr, nullptr, input_forward, false, true, false, true,
     Activation::none},
    {Op::conv2d, "conv2d", 1, conv2d_shape, conv2d_repr, conv2d_layer, conv2d_forward, true, true,
     false, true, Activation::none},
    {Op::linear, "linear", 1, linear_shape, linear_repr, linear_layer, linear_forward, true, true,
     false, true, Activation::none},
    {Op::batch_norm2d, "batch_norm2d", 1, batch_norm_shape, batch_norm_repr, batch_norm_layer,
     batch_norm_forward, false, true, false, false, Activation::none},
    {Op::relu, "relu", 1, same_shape, [](const Attrs&) -> std::string { return "ReLU()"; }, nullptr,
     relu_forward, false, false, false, true, Activation::relu},
    {Op::relu6, "relu6", 1, same_shape, [](const Attrs&) -> std::string { return "ReLU6()"; },
     nullptr, relu6_forward, false, false, false, true, Activation::relu6},
    {Op::sigmoid, "sigmoid", 1, same_shape, [](const Attrs&) -> std::string { return "Sigmoid()"; },
     nullptr, sigmoid_forward, false, true, false, false, Activation::none},
    {Op::max_pool2d, "max_pool2d", 1, pool_shape, max_pool_repr, nullptr, max_pool_forward, false,
     false, false, true, Activation::none},
    {Op::avg_pool2d, "avg_pool2d", 1, pool_shape, avg_pool_repr, nullptr, avg_pool_forward, false,
     false, true, true, Activation::none},
    {Op::adaptive_avg_pool2d, "adaptive_avg_pool2d", 1, adaptive_pool_shape, adaptive_pool_repr,
     nullptr, adaptive_pool_forward, false, false, true, true, Activation::none},
    {Op::flatten, "flatten", 1, flatten_shape,
     [](const Attrs&) -> std::string { return "Flatten(start_dim=1, end_dim=-1)"; }, nullptr,
     flatten_forward, false, false, false, true, Activation::none},
    {Op::dropout, "dropout", 1, same_shape, dropout_repr, nullptr, dropout_forward, false, false,
     false, true, Activation::none},
    {Op::add, "add", 2, both_same_shape, nullptr, nullptr, add_forward, false, true, false, true,
     Activation::none},
    {Op::reparameterize, "reparameterize", 2, both_same_shape, nullptr, nullptr,
     reparameterize_forward, false, true, false, false, Activation::none},
}};

}  // namespace

const OpInfo& op_info(Op op) {
  const auto i = static_cast<std::size_t>(op);
  QLAB_CHECK(i < kOps.size() && kOps[i].op == op, "the op table is out of step with enum Op");
  return kOps[i];
}

const char* to_string(Op op) { return op_info(op).name; }

}  // namespace qlab
