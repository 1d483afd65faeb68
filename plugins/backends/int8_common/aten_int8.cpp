// The int8 backends: availability, options and constraints per engine;
// lowering hands quantized models to int8_executable.cpp.
#include "aten_int8.hpp"

#include "int8_executable.hpp"

#include <qlab/error.hpp>
#include <qlab/runtime.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab::int8 {
namespace {

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
                             "Build qlab against a LibTorch that has it (docs/building.md)",
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
  return mode == Mode::int8 && has_int8_kernel(op);
}

void AtenInt8Backend::configure(const Options& opts) {
  require_available();
  set_threads(static_cast<int>(opts.get<std::int64_t>("threads")));
  range_ = parse_range_choice(opts.get<std::string>("reduce_range"));
  at::globalContext().setQEngine(info_.engine);
}

EngineConstraints AtenInt8Backend::constraints() const {
  // QNNPACK sums exactly on any CPU: its constraints need no CPU check.
  const CpuPath path = info_.engine == at::QEngine::QNNPACK  ? CpuPath::not_x86
                       : info_.engine == at::QEngine::ONEDNN ? onednn_path()
                                                             : cpu_path();
  return engine_constraints(info_.engine, path, range_);
}

namespace {

// The reasons a model stays simulated, each with the layers it holds back:
// "16-bit weights do not fit int8 codes (features.0, features.1, fc and 2 more)".
std::string why_simulated(const std::map<std::string, std::string>& blockers) {
  std::map<std::string, std::vector<std::string>> by_reason;
  for (const auto& [name, reason] : blockers) by_reason[reason].push_back(name);
  std::vector<std::string> parts;
  for (const auto& [reason, names] : by_reason) {
    constexpr std::size_t kShown = 3;
    std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
    parts.push_back(fmt::format(
        "{} ({}{})", reason, fmt::join(shown, ", "),
        names.size() > kShown ? fmt::format(" and {} more", names.size() - kShown) : ""));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

std::unique_ptr<Executable> AtenInt8Backend::lower(GraphModule module) const {
  return float_executable(std::move(module));
}

std::unique_ptr<Executable> AtenInt8Backend::lower(
    std::shared_ptr<const QuantizedModel> model) const {
  require_available();
  if (model->layers.empty()) return simulated_executable(model, "no layer is quantized");
  const auto blockers = model->int8_blockers();
  if (!blockers.empty()) return simulated_executable(model, why_simulated(blockers));
  return int8_executable(std::move(model), info_, constraints().reduce_range);
}

}  // namespace qlab::int8
