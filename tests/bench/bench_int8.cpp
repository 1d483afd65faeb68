// int8 against fp32, per layer kind and for whole models, on every int8
// engine this LibTorch has; and qlab's kernels on quint8 codes against the
// ATen ways of doing the same. Weights are random and calibrated on random data:
// speed does not depend on what the weights learned.
//
//   build/tests/bench/qlab_bench --benchmark_min_time=1
#include <bit_layers.hpp>
#include <code_kernels.hpp>
#include <int8_executable.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qat.hpp>
#include <qlab/registry.hpp>
#include <qlab/runtime.hpp>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <vector>

#include <unistd.h>

namespace qlab {
namespace {

const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    reg.load_dir(QLAB_BUILD_PLUGIN_DIR);
    return reg;
  }();
  return r;
}

struct Subject {
  std::string name;
  Graph graph;
};

Graph single(const char* kind) {
  Graph g(kind);
  if (std::string(kind) == "conv3x3_32to64_26x26") {
    auto x = g.input("input", {32, 26, 26});
    g.set_outputs({g.relu("relu", g.conv2d("conv", x, 32, 64, 3))});
  } else if (std::string(kind) == "conv3x3_64to64_28x28") {
    auto x = g.input("input", {64, 28, 28});
    g.set_outputs({g.relu("relu", g.conv2d("conv", x, 64, 64, 3, 1, 1))});
  } else if (std::string(kind) == "conv5x5_1to6_32x32") {
    auto x = g.input("input", {1, 32, 32});
    g.set_outputs({g.relu("relu", g.conv2d("conv", x, 1, 6, 5))});
  } else if (std::string(kind) == "conv5x5_6to16_14x14") {
    auto x = g.input("input", {6, 14, 14});
    g.set_outputs({g.relu("relu", g.conv2d("conv", x, 6, 16, 5))});
  } else if (std::string(kind) == "linear_9216to128") {
    auto x = g.input("input", {9216});
    g.set_outputs({g.relu("relu", g.linear("fc", x, 9216, 128))});
  } else {
    auto x = g.input("input", {120});
    g.set_outputs({g.relu("relu", g.linear("fc", x, 120, 84))});
  }
  return g;
}

Graph model(const char* name) {
  auto m = registry().model(name);
  const Shape in = m->input_shape({1, 28, 28}, {});
  return m->build({}, {"synthetic", in, 10});
}

torch::Tensor batch_for(const Graph& g, std::int64_t n) {
  Shape shape{n};
  const auto& in = g.input_shape();
  shape.insert(shape.end(), in.begin(), in.end());
  return torch::randn(shape);
}

// An int8 model made by QAT (one epoch on random data): the same graph as
// static's, to time the two against each other.
QuantizedModel qat_model(GraphModule m, const std::string& model_name, const Dataset& data,
                         bool reduce_range) {
  auto model = registry().model(model_name);
  QuantizeContext ctx;
  ctx.calibration = &data;
  ctx.model = model.get();
  ctx.recipe = model->default_recipe();
  ctx.training.progress = false;
  QatSpec spec;
  spec.name = "qat";
  spec.config = default_config_list({}, {8, 8, 8});
  const FakeQuantFactory make = qat_fake_quant(/*per_channel=*/true, reduce_range);
  return quantization_aware_training(std::move(m), spec, make, ctx);
}

// What one benchmark runs: fp32 (`backend` "cpu", not quantized; on
// LibTorch's kernels op by op when `libtorch_fp32`), or a
// static model of `bits`-bit weights and activations (QAT when `qat_of`
// names the model) on the backend's int8 kernels, or `simulated` in float.
struct Target {
  std::string backend;
  bool quantized = false;
  int bits = 8;
  bool simulated = false;
  std::string qat_of;
  bool libtorch_fp32 = false;
  std::vector<ConfigEntry> config;  ///< replaces `bits` on every layer
  std::string isa;                  ///< bitserial's `isa` option
};

Target target(std::string backend, bool quantized, int bits = 8) {
  Target t;
  t.backend = std::move(backend);
  t.quantized = quantized;
  t.bits = bits;
  return t;
}

void run(benchmark::State& state, Graph graph, const Target& t) {
  const std::string& backend_name = t.backend;
  const bool int8 = t.quantized;
  const std::string& qat_of = t.qat_of;
  auto backend = registry().backend(backend_name);
  if (!backend->availability().available) {
    state.SkipWithError(backend->availability().reason.c_str());
    return;
  }
  RawSection options{"backend", {}, {}};
  if (!t.isa.empty()) options.values["isa"] = {t.isa, {}};
  backend->configure(resolve(backend->options(), options));
  torch::manual_seed(0);
  GraphModule m(graph);
  m->eval();
  std::unique_ptr<Executable> exe;
  if (int8) {
    PtqSpec spec;
    spec.calibration_batches = 4;
    spec.reduce_range = backend->constraints().reduce_range;
    spec.config = t.config.empty() ? default_config_list({}, {t.bits, t.bits, t.bits}) : t.config;
    const Dataset calib{batch_for(graph, 256), torch::randint(10, {256}, torch::kInt64)};
    auto q = std::make_shared<const QuantizedModel>(
        qat_of.empty() ? post_training_quantize(m, spec, calib)
                       : qat_model(m, qat_of, calib, spec.reduce_range));
    exe = t.simulated ? simulated_executable(q, "benchmark") : backend->lower(q);
  } else {
    exe = t.libtorch_fp32 ? float_executable(m, FloatKernels::libtorch) : backend->lower(m);
  }
  const auto x = batch_for(graph, state.range(0));
  for (int i = 0; i < 3; ++i) exe->run(x);
  for (auto _ : state) benchmark::DoNotOptimize(exe->run(x));
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetLabel(exe->describe());
}

// LeNet's input (64x1x32x32) and its first pooling (64x6x28x28, 2x2), three
// ways each: what LibTorch offers, composed float ops, and qlab's kernel.
void register_code_kernels() {
  using Fn = std::function<torch::Tensor()>;
  const auto x = torch::randn({64, 1, 32, 32});
  const auto map = at::quantize_per_tensor(torch::rand({64, 6, 28, 28}), 0.01, 0, torch::kQUInt8)
                       .contiguous(at::MemoryFormat::ChannelsLast);
  const std::pair<const char*, Fn> cases[] = {
      {"kernel/quantize_64x1x32x32/aten_quantize_per_tensor",
       [=] { return at::quantize_per_tensor(x, 0.02, 10, torch::kQUInt8); }},
      {"kernel/quantize_64x1x32x32/aten_float_ops",
       [=] {
         const auto codes = x.div(0.02).round_().add_(10).clamp_(0, 255).to(torch::kUInt8);
         return at::_make_per_tensor_quantized_tensor(codes, 0.02, 10);
       }},
      {"kernel/quantize_64x1x32x32/qlab", [=] { return int8::quantize_codes(x, 0.02, 10, true); }},
      {"kernel/avg_pool_2x2_64x6x28x28/aten_quantized",
       [=] {
         return torch::avg_pool2d(map, {2, 2}, {2, 2});
       }},
      {"kernel/avg_pool_2x2_64x6x28x28/aten_float_ops",
       [=] {
         const auto codes = torch::avg_pool2d(map.int_repr().to(torch::kFloat), {2, 2}, {2, 2})
                                .round_()
                                .to(torch::kUInt8);
         return at::_make_per_tensor_quantized_tensor(codes, map.q_scale(), map.q_zero_point());
       }},
      {"kernel/avg_pool_2x2_64x6x28x28/qlab",
       [=] {
         return int8::avg_pool_codes(map, {2, 2}, {2, 2}, true);
       }},
  };
  for (const auto& [name, fn] : cases)
    benchmark::RegisterBenchmark(name,
                                 [fn = fn](benchmark::State& state) {
                                   for (auto _ : state) benchmark::DoNotOptimize(fn());
                                 })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
}

// Registers `run` of graph g on target t, at batch 64.
void add(const std::string& name, const Graph& g, const Target& t) {
  benchmark::RegisterBenchmark(name.c_str(), [g, t](benchmark::State& st) { run(st, g, t); })
      ->Arg(64)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

// One layer of `bits`-bit weights and activations, quantized by PTQ on
// random data, as the int8 executable runs it on `info`'s kernels, timed on
// the quint8 input its input step would give it.
void run_layer(benchmark::State& state, const Graph& graph, int bits, const std::string& node,
               const int8::EngineInfo& info) {
  torch::manual_seed(0);
  GraphModule m(graph);
  m->eval();
  PtqSpec spec;
  spec.calibration_batches = 4;
  spec.config = default_config_list({}, {bits, bits, bits});
  const Dataset calib{batch_for(graph, 256), torch::randint(10, {256}, torch::kInt64)};
  auto q = std::make_shared<const QuantizedModel>(post_training_quantize(m, spec, calib));
  const QParams& in = *q->input_grid(node);
  const auto x = int8::quantize_codes(batch_for(graph, state.range(0)), in.scale.item<double>(),
                                      in.zero_point.item<std::int64_t>() - in.qmin, true, 0,
                                      static_cast<std::uint8_t>(in.qmax - in.qmin));
  const int8::LayerKernel layer = int8::lowered_node(q, info, node);
  for (int i = 0; i < 3; ++i) layer.run(x, true);
  for (auto _ : state) benchmark::DoNotOptimize(layer.run(x, true));
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetLabel(layer.name);
}

// The bit kernels: 1- and 2-bit layers on bitserial's kernels (each
// instruction set this CPU has; at 2 bits, on bit planes and on packed
// fields, "_fields") against the same layer on oneDNN's int8
// kernels, quint8 in and out; and a binary (and a 2-bit) LeNet, W1A1
// (W2A2) but for its first layer (8-bit input) and last (8-bit output), as
// DoReFa-Net and XNOR-Net keep them, against its int8 twin. Pairs in
// kSpeedups.
void register_bit_kernels() {
  auto add_layer = [](const std::string& name, const char* kind, int bits, const char* node,
                      const int8::EngineInfo& info) {
    benchmark::RegisterBenchmark(
        name.c_str(), [=](benchmark::State& st) { run_layer(st, single(kind), bits, node, info); })
        ->Arg(64)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  for (const auto& [kind, node] :
       {std::pair<const char*, const char*>{"conv3x3_64to64_28x28", "conv"},
        {"conv5x5_6to16_14x14", "conv"},
        {"linear_9216to128", "fc"}})
    for (int bits : {1, 2}) {
      const std::string name = fmt::format("bits/layer/{}/w{}a{}", kind, bits, bits);
      add_layer(name + "/int8_onednn", kind, bits, node, {"onednn", at::QEngine::ONEDNN, true, {}});
      const bool conv = std::string(node) == "conv";
      for (bits::Isa isa : {bits::Isa::avx512, bits::Isa::avx2, bits::Isa::portable})
        for (bits::Packing packing :
             {bits::Packing::planes, bits::Packing::fields, bits::Packing::tables})
          if (bits::cpu_has(isa) && (bits == 2 || packing == bits::Packing::planes) &&
              (conv || packing != bits::Packing::tables))
            add_layer(
                name + "/bitserial_" + bits::to_string(isa) +
                    (packing == bits::Packing::planes
                         ? ""
                         : std::string("_") + bits::to_string(packing)),
                kind, bits, node,
                {"bitserial", at::QEngine::ONEDNN, true, [isa, packing](const int8::LayerOffer& o) {
                   return bits::bit_layer_for(o, isa, packing);
                 }});
      // Winograd's F(2x2, 3x3), the default for this W2A2 layer on VNNI and AVX2.
      if (bits == 2 && std::string(kind).rfind("conv3x3", 0) == 0)
        for (bits::Isa isa : {bits::Isa::avx512, bits::Isa::avx2})
          if (isa == bits::Isa::avx512 ? bits::cpu_has_vnni() : bits::cpu_has(isa))
            add_layer(name + "/bitserial_" + bits::to_string(isa) + "_winograd", kind, bits, node,
                      {"bitserial", at::QEngine::ONEDNN, true, [isa](const int8::LayerOffer& o) {
                         return bits::bit_layer_for(o, isa, bits::Packing::winograd);
                       }});
    }
  for (int bits : {1, 2}) {
    ConfigEntry all, first, last;
    all.bits = {bits, bits, bits};
    first.op_names = {"features.0"};
    first.bits = {8, 8, bits};
    last.op_names = {"classifier.2"};
    last.bits = {8, bits, 8};
    Target low = target("onednn", true);
    low.config = {all, first, last};
    const std::string name = fmt::format("bits/model/lenet_w{}a{}/", bits, bits);
    add(name + "int8_onednn", model("lenet"), low);
    low.backend = "bitserial";
    add(name + "bitserial", model("lenet"), low);
    add(name + "fp32", model("lenet"), target("cpu", false));
  }
}

// LeNet's first layer (1 input channel, 6 out, 5x5, 32x32, batch 64) at 8
// bits on qlab's image convolution and on oneDNN's int8 kernel; and at 4
// bits, where AVX2 takes the weights as byte pairs ("_w4").
void register_image_conv() {
  for (int bits : {8, 4})
    for (bool image_convs : {false, true}) {
      int8::EngineInfo info{"onednn", at::QEngine::ONEDNN, true, {}};
      info.image_convs = image_convs;
      const std::string name =
          fmt::format("kernel/conv5x5_1to6_32x32/{}{}",
                      image_convs ? "qlab_image_conv" : "onednn_engine", bits == 8 ? "" : "_w4");
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& st) {
                                     run_layer(st, single("conv5x5_1to6_32x32"), bits, "conv",
                                               info);
                                   })
          ->Arg(64)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
}

// Speed-ups printed after the run: each benchmark named `prefix` + `fast`
// against `prefix` + `slow`, for every prefix both ran under.
const std::pair<const char*, const char*> kSpeedups[] = {
    {"/bitserial_avx512", "/int8_onednn"},
    {"/bitserial_avx2", "/int8_onednn"},
    {"/bitserial_portable", "/int8_onednn"},
    {"/bitserial_avx512_fields", "/int8_onednn"},
    {"/bitserial_avx2_fields", "/int8_onednn"},
    {"/bitserial_portable_fields", "/int8_onednn"},
    {"/bitserial_avx512_tables", "/int8_onednn"},
    {"/bitserial_avx2_tables", "/int8_onednn"},
    {"/bitserial_portable_tables", "/int8_onednn"},
    {"/bitserial_avx512_winograd", "/int8_onednn"},
    {"/bitserial_avx2_winograd", "/int8_onednn"},
    {"/bitserial", "/int8_onednn"},
    {"/bitserial", "/fp32"},
    {"/qlab_image_conv", "/onednn_engine"},
    {"/qlab_image_conv_w4", "/onednn_engine_w4"},
    {"/qlab_image_conv_w4", "/qlab_image_conv"},
};

// The console output, and each benchmark's real times kept for kSpeedups.
// Under --benchmark_repetitions a ratio is of the medians, so that with
// --benchmark_enable_random_interleaving both sides sample the same phases
// of a shared machine. A reporter passed in keeps its own options, which
// --benchmark_color does not reach: colour only on a terminal, as the
// library's "auto" does, and never in a log.
class SpeedupReporter : public benchmark::ConsoleReporter {
 public:
  SpeedupReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (!r.error_occurred && r.run_type == Run::RT_Iteration)
        ms_[r.run_name.function_name].push_back(r.GetAdjustedRealTime());
    ConsoleReporter::ReportRuns(runs);
  }
  void print_speedups() const {
    for (const auto& [name, times] : ms_)
      for (const auto& [fast, slow] : kSpeedups) {
        const std::string f = fast;
        if (name.size() <= f.size() || name.compare(name.size() - f.size(), f.size(), f) != 0)
          continue;
        const auto other = ms_.find(name.substr(0, name.size() - f.size()) + slow);
        if (other == ms_.end()) continue;
        const double ms = median(times), other_ms = median(other->second);
        const std::string runs = times.size() > 1 ? fmt::format(", medians of {} and {} runs",
                                                                times.size(), other->second.size())
                                                  : "";
        std::printf("speed-up of %s over %s: %.2fx (%.3f ms against %.3f ms%s)\n", name.c_str(),
                    other->first.c_str(), other_ms / ms, ms, other_ms, runs.c_str());
      }
  }

 private:
  static double median(std::vector<double> v) {
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    if (v.size() % 2) return *mid;
    return (*mid + *std::max_element(v.begin(), mid)) / 2;
  }

  std::map<std::string, std::vector<double>> ms_;
};

void register_all() {
  register_code_kernels();
  register_bit_kernels();
  register_image_conv();
  const std::vector<std::pair<std::string, bool>> targets{
      {"cpu", false}, {"onednn", true}, {"qnnpack", true}, {"fbgemm", true}, {"x86", true}};
  std::vector<Subject> subjects;
  for (const char* k :
       {"conv5x5_1to6_32x32", "conv3x3_32to64_26x26", "linear_120to84", "linear_9216to128"})
    subjects.push_back({std::string("layer/") + k, single(k)});
  for (const char* name : {"lenet", "mnist_cnn"})
    subjects.push_back({std::string("model/") + name, model(name)});
  for (const auto& s : subjects)
    for (const auto& [backend, int8] : targets)
      add(s.name + "/" + (int8 ? "int8_" + backend : std::string("fp32")), s.graph,
          target(backend, int8));
  Target libtorch = target("cpu", false);
  libtorch.libtorch_fp32 = true;
  for (const auto& s : subjects) add(s.name + "/fp32_libtorch", s.graph, libtorch);
  for (const char* name : {"lenet", "mnist_cnn"}) {
    Target qat = target("onednn", true);
    qat.qat_of = name;
    add(std::string("model/") + name + "/int8_onednn_qat", model(name), qat);
  }
  // Below 8 bits: the same int8 kernels on b-bit codes, against the
  // fake-quant simulation that ran these widths before.
  for (const auto& s : subjects)
    for (int bits : {4, 2, 1})
      for (bool simulated : {false, true}) {
        Target t = target("onednn", true, bits);
        t.simulated = simulated;
        add(fmt::format("{}/w{}a{}_{}", s.name, bits, bits,
                        simulated ? "simulated" : "int8_onednn"),
            s.graph, t);
      }
}

}  // namespace
}  // namespace qlab

int main(int argc, char** argv) {
  qlab::set_threads(0);
  benchmark::Initialize(&argc, argv);
  qlab::register_all();
  qlab::SpeedupReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_speedups();
  benchmark::Shutdown();
  return 0;
}
