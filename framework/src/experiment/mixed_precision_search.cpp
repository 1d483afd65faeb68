// qlab.mixed_precision: sensitivities of an experiment's baseline, then
// one allocation per budget, each as a config list.
#include <qlab/error.hpp>
#include <qlab/mixed_precision_search.hpp>
#include <qlab/quant/passes.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include "experiment/baseline.hpp"
#include "experiment/stable_hash.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <filesystem>
#include <fstream>
#include <ostream>

namespace qlab {
namespace {

namespace fs = std::filesystem;

nlohmann::json to_json(const std::vector<LayerSensitivity>& layers) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json by_bits = nlohmann::json::object();
    for (const auto& [bits, s] : l.by_bits) by_bits[std::to_string(bits)] = s;
    out.push_back(
        {{"layer", l.layer}, {"weights", l.weights}, {"macs", l.macs}, {"by_bits", by_bits}});
  }
  return out;
}

std::vector<LayerSensitivity> sensitivities_from(const nlohmann::json& j, const std::string& file) {
  std::vector<LayerSensitivity> out;
  try {
    for (const auto& l : j.at("layers")) {
      LayerSensitivity s{l.at("layer").get<std::string>(),
                         l.at("weights").get<std::int64_t>(),
                         l.at("macs").get<std::int64_t>(),
                         {}};
      for (const auto& [bits, v] : l.at("by_bits").items())
        s.by_bits[std::stoi(bits)] = v.get<double>();
      out.push_back(std::move(s));
    }
  } catch (const std::exception& e) {
    throw Error(fmt::format(
        "{}: not a sensitivity file qlab wrote ({}); delete it to measure again", file, e.what()));
  }
  return out;
}

// One entry per distinct set of widths, in the order of the widths.
nlohmann::json config_list(const std::map<std::string, LayerBits>& widths) {
  std::map<std::tuple<int, int, int>, std::vector<std::string>> groups;
  for (const auto& [layer, b] : widths) groups[{b.weight, b.input, b.output}].push_back(layer);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [bits, layers] : groups) {
    const auto [w, in, out] = bits;
    nlohmann::json types = {"weight"}, quant_bits = {{"weight", w}};
    if (in > 0) types.push_back("input"), quant_bits["input"] = in;
    if (out > 0) types.push_back("output"), quant_bits["output"] = out;
    list.push_back({{"op_names", layers}, {"quant_types", types}, {"quant_bits", quant_bits}});
  }
  return list;
}

double cost_of(const LayerSensitivity& l, const LayerBits& base, int bits, BudgetKind kind) {
  if (kind == BudgetKind::size_ratio) return static_cast<double>(l.weights) * bits;
  const int input = base.input > 0 ? base.input : 32;  // a float input multiplies in 32 bits
  return static_cast<double>(l.macs) * bits * input;
}

double full_cost(const LayerSensitivity& l, BudgetKind kind) {
  return kind == BudgetKind::size_ratio ? static_cast<double>(l.weights) * 32
                                        : static_cast<double>(l.macs) * 32 * 32;
}

}  // namespace

const char* to_string(SensitivityMethod m) {
  return m == SensitivityMethod::loss ? "loss" : "hessian";
}
const char* to_string(BudgetKind k) {
  return k == BudgetKind::size_ratio ? "size_ratio" : "bops_ratio";
}

MixedPrecisionSearch search_mixed_precision(const Experiment& base, const Registry& registry,
                                            const MixedPrecisionSpec& spec,
                                            const RunSettings& settings, bool cached_only,
                                            std::ostream& log) {
  const ExperimentPlan plan = plan_experiment(base, registry);
  const Resolved& r = *plan.resolved;
  if (!r.quantizer)
    throw Error(
        "qlab.mixed_precision: the base experiment needs a quantizer: it says which layers "
        "are quantized and with which activation widths");
  if (spec.budgets.empty()) throw Error("qlab.mixed_precision: no budget given");
  for (double b : spec.budgets)
    if (!(b > 0 && b <= 1))
      throw Error(fmt::format("qlab.mixed_precision budget: {} {} is not a ratio in (0, 1]",
                              to_string(spec.budget_kind), b));
  for (int b : spec.bits)
    if (b < r.quantizer_rules.min_bits || b > r.quantizer_rules.max_bits)
      throw Error(fmt::format("qlab.mixed_precision bits: {} is outside the {} quantizer's {}-{}",
                              b, r.quantizer_name, r.quantizer_rules.min_bits,
                              r.quantizer_rules.max_bits));

  const Prepared p = prepare(r, settings.shared.get(), log);
  GraphModule module(p.graph);
  nlohmann::json config = r.config;
  config["quantizer"] = {{"name", "none"}};
  const nlohmann::json identity = baseline_identity(p, config);
  const std::string baseline = stable_hash(identity.dump());

  // Which layers the quantizer would quantize, with their activation widths.
  const GraphModule probe = fuse(GraphModule(p.graph));
  const LayerSelection selection =
      select_layers(probe->graph(), r.quantizer_config, "[quantizer] config", r.quantizer_rules);
  std::vector<std::string> layers;
  for (const auto& [name, b] : selection.layers)
    if (b.weight > 0) layers.push_back(name);
  if (layers.empty()) throw Error("qlab.mixed_precision: the base quantizer quantizes no weights");
  const bool per_channel =
      (!r.quantizer_opts.has("per_channel") || r.quantizer_opts.get<bool>("per_channel")) &&
      p.engine.per_channel_weights;
  const bool mse_weights = r.quantizer_opts.has("weight_range") &&
                           r.quantizer_opts.get<std::string>("weight_range") == "mse";

  MixedPrecisionSearch out;
  nlohmann::json identity_of_search{{"baseline", baseline},
                                    {"data", p.data_key},
                                    {"layers", layers},
                                    {"bits", spec.bits},
                                    {"method", to_string(spec.method)},
                                    {"samples", spec.samples},
                                    {"per_channel", per_channel}};
  const bool narrow =
      r.quantizer_opts.has("narrow_range") && r.quantizer_opts.get<bool>("narrow_range");
  // Earlier caches keep their names.
  if (mse_weights) identity_of_search["weight_range"] = "mse";
  if (narrow) identity_of_search["narrow_range"] = true;
  const std::string key = stable_hash(identity_of_search.dump());
  out.sensitivity_file =
      (fs::path(settings.cache_dir) / fmt::format("{}-sensitivity-{}.json", r.model_name, key))
          .string();
  if (settings.use_cache && fs::exists(out.sensitivity_file)) {
    std::ifstream in(out.sensitivity_file);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    out.layers = sensitivities_from(j, out.sensitivity_file);
    out.cached = true;
  } else if (cached_only) {
    throw Error(fmt::format(
        "qlab.mixed_precision: no sensitivities cached ({}); run the script with `qlab sweep` "
        "first",
        out.sensitivity_file));
  } else {
    ResultRow row;
    shared_baseline(module, r, p.data.train, identity, baseline, settings, row);
    module->eval();
    SensitivitySpec s;
    s.bits = spec.bits;
    s.method = spec.method;
    s.per_channel = per_channel;
    s.weight_range = mse_weights ? WeightRange::mse : WeightRange::minmax;
    s.narrow_range = narrow;
    s.batch_size = r.recipe.batch_size;
    const Dataset sample =
        calibration_subset(p.data.train, spec.samples, 4247, "qlab.mixed_precision");
    log << fmt::format("mixed precision: {} sensitivity of {} layers at {} bits on {} images\n",
                       to_string(spec.method), layers.size(), fmt::join(spec.bits, "/"),
                       sample.size());
    out.layers = layer_sensitivity(fuse(module), *r.model, sample, layers, s);
    fs::create_directories(settings.cache_dir);
    std::ofstream(out.sensitivity_file)
        << nlohmann::json{{"identity", identity}, {"layers", to_json(out.layers)}}.dump(1);
  }

  for (double ratio : spec.budgets) {
    std::vector<LayerChoices> choices;
    double full = 0;
    for (const auto& l : out.layers) {
      LayerChoices c{l.layer, {}};
      for (const auto& [bits, s] : l.by_bits)
        c.choices.push_back(
            {bits, cost_of(l, selection.layers.at(l.layer), bits, spec.budget_kind), s});
      full += full_cost(l, spec.budget_kind);
      choices.push_back(std::move(c));
    }
    MixedPrecisionCandidate cand;
    cand.budget = ratio;
    cand.allocation = allocate_bits(choices, ratio * full, spec.greedy);
    cand.ratio = cand.allocation.cost / full;
    std::map<std::string, LayerBits> widths;
    for (const auto& [layer, bits] : cand.allocation.bits) {
      widths[layer] = selection.layers.at(layer);
      widths[layer].weight = bits;
    }
    cand.config = config_list(widths);
    cand.label = fmt::format("mixed {}<={:g}",
                             spec.budget_kind == BudgetKind::size_ratio ? "size" : "bops", ratio);
    out.candidates.push_back(std::move(cand));
  }
  return out;
}

}  // namespace qlab
