#include <qlab/report.hpp>

#include <fmt/format.h>

#include <set>

namespace qlab {
namespace {

std::string csv_cell(const nlohmann::json& v) {
  std::string s = v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

std::string field_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:g}", v.get<double>());
  return v.dump();
}

nlohmann::json row_field(const nlohmann::json& row, const std::string& name) {
  const auto dot = name.find('.');
  if (dot == std::string::npos) {
    if (row.contains(name) && !row[name].is_structured()) return row[name];
    if (row.contains("metrics") && row["metrics"].contains(name)) return row["metrics"][name];
    return nullptr;
  }
  const std::string head = name.substr(0, dot), tail = name.substr(dot + 1);
  if (head == "point" || head == "metrics" || head == "environment") {
    if (row.contains(head) && row[head].contains(tail)) return row[head][tail];
    return nullptr;
  }
  if (row.contains("config") && row["config"].contains(head) && row["config"][head].contains(tail))
    return row["config"][head][tail];
  return nullptr;
}

std::string rows_csv(const std::vector<nlohmann::json>& rows) {
  std::vector<std::string> columns{"point.label", "point.status", "model", "dataset",
                                   "quantizer",   "backend",      "mode"};
  std::set<std::string> metrics, options;
  for (const auto& r : rows) {
    if (r.contains("metrics"))
      for (const auto& [k, v] : r["metrics"].items()) metrics.insert(k);
    if (r.contains("config"))
      for (const auto& [section, opts] : r["config"].items())
        for (const auto& [k, v] : opts.items()) options.insert(section + "." + k);
  }
  columns.insert(columns.end(), metrics.begin(), metrics.end());
  columns.insert(columns.end(), options.begin(), options.end());
  std::string out;
  for (std::size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + csv_cell(columns[i]);
  out += "\n";
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const bool metric = i >= 7 && i < 7 + metrics.size();
      out += (i ? "," : "") +
             csv_cell(metric ? row_field(r, "metrics." + columns[i]) : row_field(r, columns[i]));
    }
    out += "\n";
  }
  return out;
}

}  // namespace qlab
