// The Markdown report: environment, results with ratios against each
// point's fp32 baseline, plots, notes, calibration tables and the models.
#include "io/archive_io.hpp"

#include <qlab/error.hpp>
#include <qlab/report.hpp>
#include <qlab/result.hpp>
#include <qlab/version.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

namespace qlab {
namespace {

namespace fs = std::filesystem;

std::string cell(const nlohmann::json& v) { return v.is_null() ? "—" : field_text(v); }

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::string out = "| " + fmt::format("{}", fmt::join(header, " | ")) + " |\n|";
  for (std::size_t i = 0; i < header.size(); ++i) out += i < 1 ? "---|" : "---:|";
  out += "\n";
  for (const auto& r : rows) out += "| " + fmt::format("{}", fmt::join(r, " | ")) + " |\n";
  return out;
}

bool measured(const nlohmann::json& row) {
  return !row.contains("point") || row["point"].value("status", "ok") == "ok";
}

bool is_float(const nlohmann::json& row) { return row.value("quantizer", "none") == "none"; }

// The options whose values differ between rows: what a sweep varied.
std::vector<std::string> varying_options(const std::vector<nlohmann::json>& rows) {
  std::map<std::string, std::set<std::string>> seen;
  for (const auto& r : rows) {
    if (!r.contains("config")) continue;
    for (const auto& [section, opts] : r["config"].items())
      for (const auto& [k, v] : opts.items())
        if (k != "name") seen[section + "." + k].insert(v.dump());
  }
  std::vector<std::string> out;
  for (const auto& [k, values] : seen)
    if (values.size() > 1) out.push_back(k);
  return out;
}

std::string environment(const std::vector<nlohmann::json>& rows) {
  const nlohmann::json* env = nullptr;
  std::string first, last;
  std::set<std::string> datasets;
  for (const auto& r : rows) {
    if (!env && r.contains("environment") && !r["environment"].empty()) env = &r["environment"];
    if (r.contains("point")) {
      const std::string s = r["point"].value("started", ""), e = r["point"].value("ended", "");
      if (!s.empty() && (first.empty() || s < first)) first = s;
      if (e > last) last = e;
    }
    if (measured(r)) datasets.insert(r.value("dataset", "?"));
  }
  std::vector<std::vector<std::string>> lines;
  if (env) {
    auto get = [&](const char* k) { return env->contains(k) ? cell((*env)[k]) : std::string("—"); };
    lines = {
        {"CPU", get("cpu")},
        {"threads", get("threads")},
        {"LibTorch", get("torch")},
        {"quantized engines",
         env->contains("engines") ? fmt::format("{}", fmt::join((*env)["engines"], ", ")) : "—"},
        {"runtime", get("runtime")},
        {"qlab", get("qlab")},
        {"host", get("host")}};
    if (env->contains("int8")) {
      const auto& i = (*env)["int8"];
      lines.insert(
          lines.begin() + 1,
          {"int8 path", fmt::format("{}; 8-bit activations on {} bits", i.value("path", "?"),
                                    i.value("reduce_range", false) ? 7 : 8)});
    }
  }
  lines.push_back({"data used", fmt::format("{}", fmt::join(datasets, ", "))});
  if (!first.empty()) lines.push_back({"measured", first + " to " + last});
  return table({"", ""}, lines);
}

std::string results(const std::vector<nlohmann::json>& rows,
                    const std::vector<std::string>& options) {
  // The page keeps the columns the seeds report; rows.csv has every metric.
  const std::set<std::string> shown{
      "accuracy",        "loss",        "size_bytes",        "latency_ms",
      "speedup_vs_fp32", "test_set_ms", "peak_memory_bytes", "train_seconds"};
  std::vector<const MetricColumn*> used;
  for (const auto* c : metric_columns_in(rows))
    if (shown.count(c->key)) used.push_back(c);
  std::vector<std::string> header{"point", "model", "quantizer", "backend", "mode"};
  header.insert(header.end(), options.begin(), options.end());
  for (const auto* c : used) header.emplace_back(c->header);
  header.emplace_back("vs fp32");

  std::vector<std::vector<std::string>> lines;
  std::set<std::string> baselines_shown;
  std::map<std::string, const nlohmann::json*> baseline_of;  // point hash -> its fp32 row
  for (const auto& r : rows) {
    const std::string point = r.contains("point") ? r["point"].value("hash", "") : "";
    if (is_float(r) && measured(r)) {
      baseline_of[point] = &r;
      // Points of a sweep share their baseline; show it once.
      const std::string key = r["config"].dump();
      if (!baselines_shown.insert(key).second) continue;
    }
    std::vector<std::string> line{r.contains("point") ? r["point"].value("label", "") : "",
                                  r.value("model", "?"), r.value("quantizer", "?"),
                                  r.value("backend", "?"), r.value("mode", "?")};
    for (const auto& o : options) line.push_back(cell(row_field(r, o)));
    for (const auto* c : used) {
      const auto v = row_field(r, std::string("metrics.") + c->key);
      line.push_back(v.is_number() ? c->format(v.get<double>()) : "—");
    }
    std::vector<std::string> ratios;
    const auto it = baseline_of.find(point);
    if (!is_float(r) && measured(r) && it != baseline_of.end()) {
      const auto& b = *it->second;
      auto both = [&](const char* k) {
        return row_field(r, std::string("metrics.") + k).is_number() &&
               row_field(b, std::string("metrics.") + k).is_number();
      };
      auto m = [](const nlohmann::json& row, const char* k) {
        return row["metrics"][k].get<double>();
      };
      if (both("accuracy"))
        ratios.push_back(fmt::format("{:+.2f} pts", m(r, "accuracy") - m(b, "accuracy")));
      if (both("loss"))
        ratios.push_back(fmt::format("loss {:+.2f}%", 100 * (m(r, "loss") / m(b, "loss") - 1)));
      if (both("size_bytes"))
        ratios.push_back(fmt::format("size {:.3f}x", m(r, "size_bytes") / m(b, "size_bytes")));
      if (row_field(r, "metrics.speedup_vs_fp32").is_number())
        ratios.push_back(fmt::format("{:.2f}x faster", m(r, "speedup_vs_fp32")));
      if (both("test_set_ms"))
        ratios.push_back(
            fmt::format("test set {:.2f}x faster", m(b, "test_set_ms") / m(r, "test_set_ms")));
    } else if (!measured(r)) {
      ratios.push_back(r["point"].value("message", ""));
    }
    line.push_back(ratios.empty() ? "—" : fmt::format("{}", fmt::join(ratios, ", ")));
    lines.push_back(std::move(line));
  }
  return table(header, lines);
}

std::string scales(const nlohmann::json& v) {
  if (v.is_array() && !v.empty()) {
    double lo = v[0].get<double>(), hi = lo;
    for (const auto& x : v) lo = std::min(lo, x.get<double>()), hi = std::max(hi, x.get<double>());
    return fmt::format("{} channels, {:.3g} to {:.3g}", v.size(), lo, hi);
  }
  return cell(v.is_number() ? nlohmann::json(fmt::format("{:.4g}", v.get<double>())) : v);
}

std::string calibration(const std::vector<nlohmann::json>& rows) {
  std::string out;
  for (const auto& r : rows) {
    if (!measured(r) || !r.contains("calibration") || r["calibration"].empty()) continue;
    std::vector<std::vector<std::string>> lines;
    for (const auto& item : r["calibration"].items()) {
      const auto& c = item.value();
      auto f = [&](const char* k) { return c.contains(k) ? scales(c[k]) : std::string("—"); };
      lines.push_back({item.key(), f("weight_bits"), f("weight_scale"), f("input_bits"),
                       f("input_scale"), f("input_zero_point"), f("tracked_min_input"),
                       f("tracked_max_input")});
    }
    const std::string label = r.contains("point") ? r["point"].value("label", "") : "";
    out +=
        fmt::format("<details><summary>{} {} on {} ({})</summary>\n\n", r.value("quantizer", "?"),
                    r.value("mode", "?"), r.value("backend", "?"), label);
    out += table({"layer", "weight bits", "weight scale", "input bits", "input scale",
                  "input zero point", "tracked min input", "tracked max input"},
                 lines);
    out += "\n</details>\n\n";
  }
  return out;
}

std::string notes(const std::vector<nlohmann::json>& rows) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& r : rows) {
    if (!r.contains("notes") || r["notes"].empty()) continue;
    std::vector<std::string> kept;
    for (const auto& n : r["notes"]) {
      const std::string s = n.get<std::string>();
      // Cache paths differ between machines and say nothing about results.
      if (s.find("cached as") != std::string::npos ||
          s.find("loaded from cache") != std::string::npos)
        continue;
      kept.push_back(s);
    }
    const std::string label = r.contains("point") ? r["point"].value("label", "") : "";
    const std::string line =
        fmt::format("- **{} {} {}** ({}): {}\n", r.value("model", "?"), r.value("quantizer", "?"),
                    r.value("mode", "?"), label, fmt::join(kept, "; "));
    if (!kept.empty() && seen.insert(line).second) out += line;
  }
  return out;
}

}  // namespace

std::string write_report(const ReportSpec& spec) {
  if (spec.name.empty() || spec.name.find_first_of("/\\") != std::string::npos ||
      spec.name[0] == '.')
    throw Error(fmt::format("report name '{}': a folder name under {}/, without '/'", spec.name,
                            spec.root));
  if (spec.rows.empty()) throw Error(fmt::format("report '{}': no rows to report", spec.name));
  const fs::path dir = fs::path(spec.root) / spec.name;
  fs::create_directories(dir);

  std::string md = fmt::format("# {}\n\n", spec.title.empty() ? spec.name : spec.title);
  if (!spec.intro.empty()) md += spec.intro + "\n\n";
  std::size_t points = 0, ok = 0;
  std::set<std::string> hashes;
  for (const auto& r : spec.rows)
    if (r.contains("point") && hashes.insert(r["point"].value("hash", "")).second) {
      ++points;
      ok += measured(r);
    }
  md += fmt::format(
      "Made by qlab {} from {} stored points ({} measured, {} failed or skipped). `qlab report` "
      "regenerates this page from the results store alone; [rows.csv](rows.csv) and "
      "[rows.json](rows.json) hold every number.\n\n",
      version(), points, ok, points - ok);
  md += "## Environment\n\n" + environment(spec.rows) + "\n";
  const auto options = spec.columns.empty() ? varying_options(spec.rows) : spec.columns;
  md +=
      "## Results\n\nEach quantized row is compared with the fp32 baseline of the same point "
      "(accuracy in points, loss relative, size as a ratio, speed-up measured A/B in one run).\n\n";
  md += results(spec.rows, options) + "\n";
  if (!spec.plots.empty()) {
    md += "## Plots\n\n";
    for (const auto& p : spec.plots) {
      write_plot(p, spec.rows, dir.string());
      md += fmt::format(
          "### {}\n\n![{}](plots/{}.png)\n\n[SVG](plots/{}.svg) · [data](plots/{}) · "
          "[gnuplot script](plots/{}.gp)\n\n",
          p.title.empty() ? p.name : p.title, p.title, p.name, p.name, plot_data_file(p), p.name);
    }
  }
  if (const auto n = notes(spec.rows); !n.empty()) md += "## Notes\n\n" + n + "\n";
  if (const auto c = calibration(spec.rows); !c.empty())
    md +=
        "## Calibration\n\nPer layer: weight and input quantization parameters, and the input "
        "range "
        "the observers tracked.\n\n" +
        c;
  std::map<std::string, std::string> graphs;
  for (const auto& r : spec.rows)
    if (r.contains("graph") && !r["graph"].get<std::string>().empty())
      graphs.emplace(r.value("model", "?"), r["graph"].get<std::string>());
  if (!graphs.empty()) {
    md += "## Models\n\n";
    for (const auto& [name, g] : graphs)
      md += fmt::format("`{}`, as PyTorch's `print(model)` shows it:\n\n```text\n{}\n```\n\n", name,
                        g);
    std::set<std::string> shown;
    for (const auto& r : spec.rows) {
      if (!measured(r) || !r.contains("lowered") || r["lowered"].size() < 2) continue;
      const std::string text =
          fmt::format("{}", fmt::join(r["lowered"].get<std::vector<std::string>>(), "\n"));
      if (!shown.insert(text).second) continue;
      md += fmt::format(
          "{} {} on {} ({}), node by node: the kernel that runs and what it "
          "produces:\n\n```text\n{}\n```\n\n",
          r.value("quantizer", "?"), r.value("mode", "?"), r.value("backend", "?"),
          r.contains("point") ? r["point"].value("label", "") : "", text);
    }
  }

  write_atomically((dir / "rows.json").string(), rows_json(spec.rows));
  write_atomically((dir / "rows.csv").string(), rows_csv(spec.rows));
  const std::string path = (dir / "README.md").string();
  write_atomically(path, md);
  return path;
}

}  // namespace qlab
