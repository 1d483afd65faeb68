#pragma once
// A result row: what `qlab run --json` writes and the results store keeps.
#include <qlab/plugin/backend.hpp>
#include <qlab/plugin/metric.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qlab {

struct ResultRow {
  std::string model;
  std::string dataset;
  std::string quantizer = "none";
  std::string backend;
  Mode mode = Mode::fp32;
  nlohmann::json config;                  ///< fully resolved options of every section
  MetricValues metrics;                   ///< only the metrics that apply
  std::vector<std::string> notes;         ///< e.g. "baseline loaded from cache"
  std::vector<std::string> float_layers;  ///< conv2d/linear a quantizer left in float
  nlohmann::json calibration = nlohmann::json::object();  ///< per-layer qparams
  nlohmann::json environment;                             ///< versions, threads, engines, CPU, host
  nlohmann::json training = nlohmann::json::array();      ///< the baseline's epochs
  std::string graph;                 ///< the float model as print(model) shows it
  std::vector<std::string> lowered;  ///< per node: the kernel it runs and what it produces
  nlohmann::json samples;            ///< reconstruction models: images (see samples.hpp)
};

/// How tables show a metric; in the order tables list them.
struct MetricColumn {
  const char* key;
  const char* header;
  std::string (*format)(double);
};
const std::vector<MetricColumn>& metric_columns();
/// The columns of metric_columns() that some row (to_json) has a value for.
std::vector<const MetricColumn*> metric_columns_in(const std::vector<nlohmann::json>& rows);

nlohmann::json to_json(const ResultRow& row);
/// The console table of rows stored as JSON (see to_json).
std::string format_rows(const std::vector<nlohmann::json>& rows);
/// `{"rows": [...]}`, written atomically.
void write_rows_json(const std::string& path, const std::vector<ResultRow>& rows);
/// The console table of `qlab run`.
std::string format_rows(const std::vector<ResultRow>& rows);
/// Each quantized row against the float row before it: speed-up, compression
/// and accuracy/loss change, as in the seeds' tables. Empty without a pair.
std::string format_comparison(const std::vector<ResultRow>& rows);

}  // namespace qlab
