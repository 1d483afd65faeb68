#pragma once
// Reports: Markdown with tables and gnuplot plots, made from stored result
// rows alone, so a report can be regenerated without running anything.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qlab {

/// A value of a result row by name: "model", "mode" (top-level fields),
/// "accuracy" (a metric), "quantizer.weight_bits" (a resolved option), or
/// "point.label". Null when the row has none.
nlohmann::json row_field(const nlohmann::json& row, const std::string& name);

/// A field as plot labels and tables show it: strings bare, numbers short.
std::string field_text(const nlohmann::json& value);

struct PlotSpec {
  /// line: y against numeric x, one line per `series`; bars: y per `x` label;
  /// heatmap: z over the x-by-y grid; scatter: y against x, points labelled
  /// by `series`; curves: the baselines' training curves (y: loss|accuracy);
  /// images: a reconstruction model's test images, each row's reconstructions
  /// (labelled by `series`, default mode) and samples from the prior.
  std::string kind = "line";
  std::string name;  ///< file stem under plots/
  std::string title, x, y, z, series, xlabel, ylabel;
  bool logx = false;
};

/// Kinds a PlotSpec may have, for validation messages.
const std::vector<std::string>& plot_kinds();

/// Writes `dir`/plots/<name>.{png,svg,gp} and its data file with gnuplot; returns the
/// PNG's path. Throws qlab::Error when a field is missing or gnuplot fails.
/// The file beside a plot's PNG that holds its data: "NAME.dat" (text), or
/// for an image grid "NAME.pgm", the pixels as a binary image.
std::string plot_data_file(const PlotSpec& spec);
std::string write_plot(const PlotSpec& spec, const std::vector<nlohmann::json>& rows,
                       const std::string& dir);

struct ReportSpec {
  std::string name;  ///< folder under `root`
  std::string title;
  std::string intro;  ///< Markdown paragraph(s) from the script
  std::vector<nlohmann::json> rows;
  std::vector<PlotSpec> plots;
  std::vector<std::string> columns;  ///< options to show; default: those that vary
  std::string root = "reports";
};

/// Writes `root`/<name>/README.md, rows.csv, rows.json and the plots;
/// returns the Markdown file's path.
std::string write_report(const ReportSpec& spec);

/// The rows as CSV: fixed columns, then every metric, then every option.
std::string rows_csv(const std::vector<nlohmann::json>& rows);

/// A report's rows.json: every row, each bulky value once. A model's
/// printed graph goes under "graphs" by model name; a calibration entry is
/// split into its weight and activation parts, and every array or object of
/// 40 characters or more in calibration, config, environment, training and
/// lowered is written once under "shared" and named where it recurs
/// ("shared/N"); calibration numbers keep 9 significant digits (float32
/// exactly); reconstruction samples, drawn as images, are summarised. One row
/// per line, compact.
std::string rows_json(const std::vector<nlohmann::json>& rows);

}  // namespace qlab
