// The plan file of a Slurm sweep, and what one array task does with it.
#include "experiment/stable_hash.hpp"

#include <qlab/atomic_write.hpp>
#include <qlab/error.hpp>
#include <qlab/slurm.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace qlab {
namespace {

constexpr const char* kPlanFormat = "qlab-plan-1";

// The point as a float-only experiment: what trains its baseline. Its
// metrics are the cheapest there is; the points measure what they ask for.
Experiment baseline_of(const Experiment& ex) {
  Experiment b = ex;
  b.quantizer.values.clear();
  b.metrics.values.clear();
  set_option(b, "metrics.names", std::vector<std::string>{"size"}, b.metrics.where);
  return b;
}

template <typename T>
T field(const nlohmann::json& doc, const char* key, const std::string& where) {
  if (!doc.contains(key)) throw Error(fmt::format("{}: no \"{}\"", where, key));
  try {
    return doc[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(
        fmt::format("{}: \"{}\" has the wrong type ({})", where, key, doc[key].type_name()));
  }
}

const PlannedPoint& planned(const SlurmPlan& plan, std::size_t index) {
  if (index >= plan.points.size())
    throw Error(fmt::format("{}: no point {} (the plan has {} points, from 0)", plan.path, index,
                            plan.points.size()));
  return plan.points[index];
}

}  // namespace

PointDeferrer PlanBuilder::deferrer() {
  return [this](const SweepPoint& p, const ExperimentPlan& resolved, const std::string& sweep) {
    add(p, resolved, sweep);
  };
}

void PlanBuilder::add(const SweepPoint& point, const ExperimentPlan& resolved,
                      const std::string& sweep) {
  auto same = std::find_if(points_.begin(), points_.end(),
                           [&](const PlannedPoint& p) { return p.hash == resolved.hash; });
  if (same != points_.end()) {
    if (std::find(same->sweeps.begin(), same->sweeps.end(), sweep) == same->sweeps.end())
      same->sweeps.push_back(sweep);
    return;
  }
  points_.push_back({resolved.hash, point.label(), {sweep}, to_toml(point.experiment)});
  const Experiment baseline = baseline_of(point.experiment);
  const nlohmann::json config = plan_experiment(baseline, registry_).config;
  const std::string key =
      stable_hash(nlohmann::json{config["model"], config["dataset"], config["train"]}.dump());
  if (std::find(baseline_keys_.begin(), baseline_keys_.end(), key) != baseline_keys_.end()) return;
  baseline_keys_.push_back(key);
  baselines_.push_back(to_toml(baseline));
}

void PlanBuilder::fill(SlurmPlan& plan) {
  plan.points = std::move(points_);
  plan.baselines = std::move(baselines_);
  points_.clear();
  baselines_.clear();
  baseline_keys_.clear();
}

void write_plan(const SlurmPlan& plan) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : plan.points)
    points.push_back(
        {{"hash", p.hash}, {"label", p.label}, {"sweeps", p.sweeps}, {"experiment", p.experiment}});
  const nlohmann::json doc = {
      {"format", kPlanFormat},       {"script", plan.script},         {"qlab", plan.qlab},
      {"cache_dir", plan.cache_dir}, {"shards_dir", plan.shards_dir}, {"points", points},
      {"baselines", plan.baselines}};
  write_atomically(plan.path, doc.dump(1) + "\n");
}

SlurmPlan read_plan(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: no such plan file", path));
  const auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || doc.value("format", "") != kPlanFormat)
    throw Error(fmt::format("{}: not a qlab plan (no \"format\": \"{}\")", path, kPlanFormat));
  SlurmPlan plan;
  plan.path = path;
  plan.script = field<std::string>(doc, "script", path);
  plan.qlab = field<std::string>(doc, "qlab", path);
  plan.cache_dir = field<std::string>(doc, "cache_dir", path);
  plan.shards_dir = field<std::string>(doc, "shards_dir", path);
  plan.baselines = field<std::vector<std::string>>(doc, "baselines", path);
  const auto points = field<nlohmann::json>(doc, "points", path);
  if (!points.is_array()) throw Error(fmt::format("{}: \"points\" is not a list", path));
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::string where = fmt::format("{}: points[{}]", path, i);
    plan.points.push_back({field<std::string>(points[i], "hash", where),
                           field<std::string>(points[i], "label", where),
                           field<std::vector<std::string>>(points[i], "sweeps", where),
                           field<std::string>(points[i], "experiment", where)});
  }
  return plan;
}

PointRecord run_planned_point(const SlurmPlan& plan, std::size_t index, const Registry& registry,
                              const RunSettings& settings, std::ostream& log) {
  const PlannedPoint& p = planned(plan, index);
  const SweepPoint point{
      parse_experiment(p.experiment, fmt::format("{} point {}", plan.path, index)), {}};
  const ExperimentPlan resolved = plan_experiment(point.experiment, registry);
  if (resolved.hash != p.hash)
    throw Error(fmt::format(
        "{}: point {} ({}) now resolves to hash {}, not the planned {}: qlab or a plugin "
        "changed since the plan was written; submit the sweep again",
        plan.path, index, p.label, resolved.hash, p.hash));
  log << fmt::format("point {} of {}: {} ({})\n", index, plan.points.size(), p.label, p.hash);
  PointRecord rec = run_point(point, resolved, p.sweeps.empty() ? "" : p.sweeps.front(),
                              in_process_runner(settings, log));
  rec.label = p.label;
  const std::string shard = write_shard(plan.shards_dir, rec, p.sweeps);
  log << fmt::format("point {} {}{}; wrote {}\n", p.label, to_string(rec.status),
                     rec.message.empty() ? "" : ": " + rec.message, shard);
  return rec;
}

void run_planned_baseline(const SlurmPlan& plan, std::size_t index, const Registry& registry,
                          const RunSettings& settings, std::ostream& log) {
  const auto& text = plan.baselines;
  if (index >= text.size())
    throw Error(fmt::format("{}: no baseline {} (the plan has {})", plan.path, index, text.size()));
  const Experiment ex =
      parse_experiment(text[index], fmt::format("{} baseline {}", plan.path, index));
  for (const auto& row : run_experiment(ex, registry, settings, log))
    for (const auto& note : row.notes) log << "note: " << note << "\n";
}

}  // namespace qlab
