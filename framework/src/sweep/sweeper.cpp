#include <qlab/error.hpp>
#include <qlab/progress.hpp>
#include <qlab/runtime.hpp>
#include <qlab/sweep.hpp>
#include <qlab/version.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <chrono>
#include <ostream>

namespace qlab {
namespace {

std::string format_value(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return describe(v);
}

}  // namespace

std::string SweepPoint::label() const {
  std::string out;
  // Short: the option without its section, and a plugin name bare.
  for (const auto& [k, v] : assignment) {
    const std::string option = k.substr(k.find('.') + 1);
    out += (out.empty() ? "" : " ") +
           (option == "name" ? format_value(v) : option + "=" + format_value(v));
  }
  return out.empty() ? "base" : out;
}

void set_option(Experiment& ex, const std::string& dotted, const Value& value,
                const SourceLoc& where) {
  const auto dot = dotted.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == dotted.size())
    throw Error(
        fmt::format("{}: grid key '{}' must name a section and an option, e.g. "
                    "\"quantizer.weight_bits\"",
                    where.str(), dotted));
  const std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
  RawSection* s = section == "model"       ? &ex.model
                  : section == "dataset"   ? &ex.dataset
                  : section == "train"     ? &ex.train
                  : section == "quantizer" ? &ex.quantizer
                  : section == "backend"   ? &ex.backend
                  : section == "metrics"   ? &ex.metrics
                                           : nullptr;
  if (!s)
    throw Error(
        fmt::format("{}: grid key '{}': unknown section '{}' (known: backend, dataset, "
                    "metrics, model, quantizer, train)",
                    where.str(), dotted, section));
  s->values[key] = {value, where};
}

std::vector<SweepPoint> expand_grid(const Experiment& base, const std::vector<GridAxis>& axes,
                                    const SourceLoc& where) {
  std::vector<SweepPoint> points{SweepPoint{base, {}}};
  for (const auto& axis : axes) {
    if (axis.values.empty())
      throw Error(fmt::format("{}: grid key '{}' has no values", where.str(), axis.key));
    std::vector<SweepPoint> next;
    for (const auto& p : points)
      for (const auto& v : axis.values) {
        SweepPoint q = p;
        set_option(q.experiment, axis.key, v, where);
        q.assignment.emplace_back(axis.key, v);
        next.push_back(std::move(q));
      }
    points = std::move(next);
  }
  return points;
}

Sweeper::Sweeper(const Registry& registry, ResultStore& store, PointRunner runner,
                 std::ostream& log)
    : registry_(registry), store_(store), runner_(std::move(runner)), log_(log) {}

std::vector<PointRecord> Sweeper::run(const std::vector<SweepPoint>& points,
                                      const SweepSettings& settings) {
  // Every point is checked before the first one trains: a typo in the last
  // point must not cost the hours spent on the others.
  std::vector<ExperimentPlan> plans;
  for (const auto& p : points) plans.push_back(plan_experiment(p.experiment, registry_));

  std::vector<PointRecord> out;
  const auto start = std::chrono::steady_clock::now();
  double run_seconds = 0;
  std::size_t ran = 0, stored = 0, deferred = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto existing = store_.find(plans[i].hash);
    // A point skipped here (its backend missing on this machine) may run
    // where it is deferred to: only an ok point is final then.
    const bool final = existing && (existing->status == PointStatus::ok ||
                                    (existing->status == PointStatus::skipped && !settings.defer));
    const bool reuse = existing && (settings.report_only || (!settings.force && final));
    if (reuse) {
      store_.add_to_sweep(settings.name, plans[i].hash);
      existing->label = points[i].label();
      out.push_back(std::move(*existing));
      ++stored;
      continue;
    }
    if (settings.report_only)
      throw Error(
          fmt::format("sweep '{}': point {} ({}) is not in the results store {}; run the "
                      "sweep first (a report never trains or evaluates)",
                      settings.name, i + 1, points[i].label(), store_.path()));
    if (settings.defer) {
      settings.defer(points[i], plans[i], settings.name);
      PointRecord rec;
      rec.hash = plans[i].hash;
      rec.sweep = settings.name;
      rec.label = points[i].label();
      rec.config = plans[i].config;
      rec.status = PointStatus::skipped;
      rec.message = "deferred: submitted to run elsewhere";
      out.push_back(std::move(rec));
      ++deferred;
      continue;
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::size_t left = points.size() - i;
    log_ << fmt::format("[{} {}/{}] {} | {} stored, {} run | elapsed {}", settings.name, i + 1,
                        points.size(), points[i].label(), stored, ran, format_duration(elapsed));
    if (ran)
      log_ << fmt::format(" | {:.2f} points/s | ETA {}", ran / run_seconds,
                          format_duration(run_seconds / ran * left));
    log_ << "\n";
    log_.flush();
    out.push_back(run_one(points[i], plans[i], settings));
    run_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++ran;
  }
  const auto failed = std::count_if(
      out.begin(), out.end(), [](const PointRecord& p) { return p.status == PointStatus::failed; });
  if (settings.defer)
    log_ << fmt::format("[{}] {} points: {} to submit, {} already stored\n", settings.name,
                        points.size(), deferred, stored);
  else
    log_ << fmt::format("[{}] {} points: {} run now, {} from the store, {} failed\n", settings.name,
                        points.size(), ran, stored, failed);
  return out;
}

PointRunner in_process_runner(RunSettings settings, std::ostream& log) {
  if (!settings.shared) settings.shared = std::make_shared<SharedWork>();
  return [settings = std::move(settings), &log](const Experiment& ex, const ExperimentPlan& plan) {
    std::vector<nlohmann::json> rows;
    for (const auto& row : run_experiment(ex, plan, settings, log)) rows.push_back(to_json(row));
    return rows;
  };
}

PointRecord run_point(const SweepPoint& point, const ExperimentPlan& plan, const std::string& sweep,
                      const PointRunner& runner) {
  PointRecord rec;
  rec.hash = plan.hash;
  rec.sweep = sweep;
  rec.label = point.label();
  rec.config = plan.config;
  rec.qlab_version = version();
  rec.torch_version = kTorchVersion;
  rec.host = host_name();
  rec.started = utc_now();
  if (!plan.unavailable.empty()) {
    rec.status = PointStatus::skipped;
    rec.message = plan.unavailable;
  } else {
    try {
      rec.rows = runner(point.experiment, plan);
    } catch (const Interrupted&) {
      throw;  // the user stopped the sweep; this point did not fail
    } catch (const c10::Error& e) {
      rec.status = PointStatus::failed;
      rec.message = std::string("LibTorch error: ") + e.what_without_backtrace();
    } catch (const std::exception& e) {
      rec.status = PointStatus::failed;
      rec.message = e.what();
    }
  }
  rec.ended = utc_now();
  return rec;
}

PointRecord Sweeper::run_one(const SweepPoint& point, const ExperimentPlan& plan,
                             const SweepSettings& settings) {
  PointRecord rec = run_point(point, plan, settings.name, runner_);
  if (rec.status != PointStatus::ok)
    log_ << fmt::format("[{}] point {} {}: {}\n", settings.name, rec.label, to_string(rec.status),
                        rec.message);
  store_.save(rec);
  return rec;
}

std::vector<nlohmann::json> rows_of(const std::vector<PointRecord>& points) {
  std::vector<nlohmann::json> out;
  for (const auto& p : points) {
    const nlohmann::json tag = {
        {"hash", p.hash},       {"label", p.label},     {"status", to_string(p.status)},
        {"message", p.message}, {"started", p.started}, {"ended", p.ended}};
    if (p.status == PointStatus::ok) {
      for (auto row : p.rows) {
        row["point"] = tag;
        // A quantized point's float row is its baseline, not the point itself.
        if (p.rows.size() > 1 && row.value("quantizer", "none") == "none")
          row["point"]["label"] = "fp32";
        out.push_back(std::move(row));
      }
      continue;
    }
    out.push_back({{"model", section_name(p.config, "model")},
                   {"dataset", section_name(p.config, "dataset")},
                   {"quantizer", section_name(p.config, "quantizer")},
                   {"backend", section_name(p.config, "backend")},
                   {"mode", to_string(p.status)},
                   {"config", p.config},
                   {"metrics", nlohmann::json::object()},
                   {"notes", {p.message}},
                   {"point", tag}});
  }
  return out;
}

}  // namespace qlab
