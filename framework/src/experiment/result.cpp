#include "io/archive_io.hpp"

#include <qlab/error.hpp>
#include <qlab/result.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>

namespace qlab {

const char* to_string(Mode mode) {
  switch (mode) {
    case Mode::fp32:
      return "fp32";
    case Mode::int8:
      return "int8";
    case Mode::simulated:
      return "simulated";
    case Mode::fp16:
      return "fp16";
    case Mode::bf16:
      return "bf16";
  }
  return "?";
}

nlohmann::json to_json(const ResultRow& row) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [k, v] : row.metrics) metrics[k] = v;
  return {{"model", row.model},
          {"dataset", row.dataset},
          {"quantizer", row.quantizer},
          {"backend", row.backend},
          {"mode", to_string(row.mode)},
          {"config", row.config},
          {"metrics", metrics},
          {"notes", row.notes},
          {"environment", row.environment},
          {"float_layers", row.float_layers},
          {"calibration", row.calibration},
          {"training", row.training},
          {"graph", row.graph},
          {"lowered", row.lowered},
          {"samples", row.samples}};
}

void write_rows_json(const std::string& path, const std::vector<ResultRow>& rows) {
  nlohmann::json doc;
  doc["rows"] = nlohmann::json::array();
  for (const auto& r : rows) doc["rows"].push_back(to_json(r));
  write_atomically(path, doc.dump(2) + "\n");
}

namespace {

const std::vector<MetricColumn> kColumns = {
    {"accuracy", "accuracy %", [](double v) { return fmt::format("{:.2f}", v); }},
    {"loss", "loss", [](double v) { return fmt::format("{:.4f}", v); }},
    {"size_bytes", "size", [](double v) { return fmt::format("{:.1f} KiB", v / 1024); }},
    {"latency_ms", "latency ms", [](double v) { return fmt::format("{:.3f}", v); }},
    {"speedup_vs_fp32", "speed-up", [](double v) { return fmt::format("{:.2f}x", v); }},
    {"test_set_ms", "test set ms", [](double v) { return fmt::format("{:.1f}", v); }},
    {"latency_p95_ms", "p95 ms", [](double v) { return fmt::format("{:.3f}", v); }},
    {"throughput_ips", "img/s", [](double v) { return fmt::format("{:.0f}", v); }},
    {"peak_memory_bytes", "peak mem",
     [](double v) { return fmt::format("{:.1f} MiB", v / (1 << 20)); }},
    {"weight_bytes", "weights", [](double v) { return fmt::format("{:.1f} KiB", v / 1024); }},
    {"train_seconds", "train s", [](double v) { return fmt::format("{:.1f}", v); }},
    {"quantize_seconds", "quantize s", [](double v) { return fmt::format("{:.2f}", v); }},
};

}  // namespace

const std::vector<MetricColumn>& metric_columns() { return kColumns; }

std::vector<const MetricColumn*> metric_columns_in(const std::vector<nlohmann::json>& rows) {
  std::vector<const MetricColumn*> used;
  for (const auto& c : kColumns)
    for (const auto& r : rows)
      if (r.contains("metrics") && r["metrics"].contains(c.key)) {
        used.push_back(&c);
        break;
      }
  return used;
}

std::string format_rows(const std::vector<ResultRow>& rows) {
  std::vector<nlohmann::json> docs;
  for (const auto& r : rows) docs.push_back(to_json(r));
  return format_rows(docs);
}

std::string format_rows(const std::vector<nlohmann::json>& rows) {
  std::vector<std::string> headers{"model", "dataset", "quantizer", "backend", "mode"};
  const auto used = metric_columns_in(rows);
  for (const auto* c : used) headers.emplace_back(c->header);
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (const char* key : {"model", "dataset", "quantizer", "backend", "mode"})
      line.push_back(r.value(key, std::string("?")));
    for (const auto* c : used) {
      const auto& m = r["metrics"];
      line.push_back(
          m.contains(c->key) && m[c->key].is_number() ? c->format(m[c->key].get<double>()) : "n/a");
    }
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> width(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) {
    width[i] = headers[i].size();
    for (const auto& l : cells) width[i] = std::max(width[i], l[i].size());
  }
  auto render = [&](const std::vector<std::string>& l) {
    std::string s = "|";
    for (std::size_t i = 0; i < l.size(); ++i) s += fmt::format(" {:<{}} |", l[i], width[i]);
    return s + "\n";
  };
  std::string out = render(headers) + "|";
  for (auto w : width) out += std::string(w + 2, '-') + "|";
  out += "\n";
  for (const auto& l : cells) out += render(l);
  return out;
}

std::string format_comparison(const std::vector<ResultRow>& rows) {
  std::string out;
  const ResultRow* base = nullptr;
  for (const auto& r : rows) {
    if (r.quantizer == "none") {
      base = &r;
      continue;
    }
    if (!base) continue;
    auto both = [&](const char* k) { return base->metrics.count(k) && r.metrics.count(k); };
    std::vector<std::string> parts;
    if (r.metrics.count("speedup_vs_fp32"))
      parts.push_back(fmt::format("speed-up {:.2f}x (interleaved with fp32, median of ratios)",
                                  r.metrics.at("speedup_vs_fp32")));
    else if (both("latency_ms"))
      parts.push_back(fmt::format("speed-up {:.2f}x (latency {:.3f} -> {:.3f} ms)",
                                  base->metrics.at("latency_ms") / r.metrics.at("latency_ms"),
                                  base->metrics.at("latency_ms"), r.metrics.at("latency_ms")));
    if (both("size_bytes"))
      parts.push_back(fmt::format("size {:.3f}x of fp32 ({:.1f} -> {:.1f} KiB)",
                                  r.metrics.at("size_bytes") / base->metrics.at("size_bytes"),
                                  base->metrics.at("size_bytes") / 1024,
                                  r.metrics.at("size_bytes") / 1024));
    if (both("accuracy"))
      parts.push_back(fmt::format("accuracy {:+.2f} points",
                                  r.metrics.at("accuracy") - base->metrics.at("accuracy")));
    if (both("loss"))
      parts.push_back(fmt::format("loss {:+.4f}", r.metrics.at("loss") - base->metrics.at("loss")));
    out += fmt::format("{} {} on {} vs fp32: {}\n", r.quantizer, to_string(r.mode), r.backend,
                       parts.empty() ? std::string("no metric to compare")
                                     : fmt::format("{}", fmt::join(parts, "; ")));
  }
  return out;
}

}  // namespace qlab
