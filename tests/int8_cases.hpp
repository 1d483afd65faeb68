#pragma once
// Small graphs of every layer kind the int8 backends lower, with random
// weights and calibration data: what the int8 tests run at every width.
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/graph.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qmodel.hpp>

#include <ATen/CPUGeneratorImpl.h>

namespace qlab::test {

inline double normalised_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm().clamp_min(1e-12)).item<double>();
}

// Random weights, batch-norm statistics that are not the identity.
inline GraphModule randomised(const Graph& g, std::uint64_t seed) {
  torch::manual_seed(seed);
  GraphModule m(g);
  torch::NoGradGuard no_grad;
  for (auto& b : m->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.5, 0.5);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  }
  for (auto& p : m->named_parameters())
    if (p.key().find("bn") != std::string::npos) p.value().uniform_(0.5, 1.5);
  m->eval();
  return m;
}

struct Case {
  const char* name;
  Graph (*build)();
};

inline Graph conv_relu() {
  Graph g("ConvReLU");
  auto x = g.input("input", {3, 12, 12});
  x = g.conv2d("conv", x, 3, 8, 3, 1, 1);
  x = g.relu("relu", x);
  x = g.max_pool2d("pool", x, 2, 2);
  g.set_outputs({g.flatten("flatten", x)});
  return g;
}

inline Graph conv_bn_relu6_strided() {
  Graph g("ConvBN");
  auto x = g.input("input", {4, 12, 12});
  x = g.conv2d("conv", x, 4, 8, 3, 2, 1, 1, false);
  x = g.batch_norm2d("bn", x, 8);
  x = g.relu6("act", x);
  g.set_outputs({g.adaptive_avg_pool2d("pool", x, 1)});
  return g;
}

inline Graph residual() {
  Graph g("Residual");
  auto x = g.input("input", {8, 8, 8});
  auto y = g.conv2d("a", x, 8, 8, 3, 1, 1);
  y = g.relu("a_relu", y);
  y = g.conv2d("b", y, 8, 8, 1);
  auto s = g.add("add", x, y);
  s = g.avg_pool2d("pool", s, 2, 2);
  g.set_outputs({s});
  return g;
}

inline Graph mlp() {
  Graph g("MLP");
  auto x = g.input("input", {32});
  x = g.linear("fc1", x, 32, 64);
  x = g.relu("relu", x);
  g.set_outputs({g.linear("fc2", x, 64, 10)});
  return g;
}

// A flatten between a channels-last map and a linear layer: the executable
// may hand the map on in (h, w, c) order to a weight permuted to match. The
// conv is 5x5 over few channels, as LeNet's: bitserial's product tables
// take it at W2A2 on AVX2.
inline Graph conv_flatten_linear() {
  Graph g("ConvFlattenLinear");
  auto x = g.input("input", {3, 12, 12});
  x = g.conv2d("conv", x, 3, 8, 5);
  x = g.relu("relu", x);
  x = g.max_pool2d("pool", x, 2, 2);
  x = g.flatten("flatten", x);
  g.set_outputs({g.linear("fc", x, 8 * 4 * 4, 10)});
  return g;
}

inline const Case kCases[] = {{"conv_relu", conv_relu},
                              {"conv_flatten_linear", conv_flatten_linear},
                              {"conv_bn_relu6_strided", conv_bn_relu6_strided},
                              {"residual", residual},
                              {"mlp", mlp}};

inline Dataset calibration_for(const Graph& g, std::uint64_t seed) {
  Shape shape{256};
  const auto& in = g.input_shape();
  shape.insert(shape.end(), in.begin(), in.end());
  auto gen = at::detail::createCPUGenerator(seed);
  return {torch::randn(shape, gen), torch::zeros({256}, torch::kInt64)};
}

// How far int8 kernels may be from their twin (normalised error): equal
// codes. The bound leaves room for float summation order in the twin alone:
// one flipped code costs at least 1e-4 on these cases.
constexpr double kTwinEqual = 1e-6;

// A quantized model's fake-quant twin, which int8 kernels must equal. It
// adds each bias as the int8 kernels do: as int32 codes on the scale
// s_in * s_w (int32_bias), which at b bits moves it by up to half of a step
// that is only about 2^-b of an output code.
inline torch::Tensor twin(const QuantizedModel& q, const torch::Tensor& x) {
  GraphModule m = q.dequantized_module();
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  for (const auto& [name, l] : q.layers) {
    auto* bias = params.find(name + ".bias");
    const QParams* in = q.input_grid(name);
    if (bias && in) bias->copy_(int32_bias(l, in->scale.item<double>()).values());
  }
  return simulate(q, m, x)[0];
}

}  // namespace qlab::test
