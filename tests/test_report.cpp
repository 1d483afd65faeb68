// Reports from fixed rows: the Markdown against a golden file, every plot
// kind drawn, and the CSV export.
#include "test_support.hpp"

#include <qlab/report.hpp>
#include <qlab/samples.hpp>
#include <qlab/version.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace qlab::test {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<nlohmann::json> golden_rows() {
  const auto doc = nlohmann::json::parse(read(test::golden_dir() + "/report_rows.json"));
  return {doc["rows"].begin(), doc["rows"].end()};
}

ReportSpec spec_in(const TempDir& dir) {
  ReportSpec spec;
  spec.name = "golden";
  spec.title = "LeNet, fixed rows";
  spec.intro = "Rows recorded once from scripts/quickstart.lua.";
  spec.rows = golden_rows();
  spec.root = dir.file("reports");
  spec.plots = {
      {"line", "acc", "Accuracy against bits", "quantizer.weight_bits", "accuracy", "", "quantizer",
       "", "", true},
      {"bars", "latency", "Latency", "point.label", "latency_ms", "", "", "", "ms", false},
      {"heatmap", "heat", "Accuracy", "quantizer.weight_bits", "quantizer.activation_bits",
       "accuracy", "", "", "", false},
      {"scatter", "size", "Size against accuracy", "size_bytes", "accuracy", "", "point.label", "",
       "", false},
      {"curves", "training", "Training", "", "loss", "", "", "", "", false},
  };
  return spec;
}

TEST(Report, MarkdownMatchesTheGoldenFile) {
  TempDir dir;
  const std::string path = write_report(spec_in(dir));
  std::string md = read(path);
  // The version line is the one part that changes with every release.
  const std::string v = std::string("qlab ") + version() + " from";
  ASSERT_NE(md.find(v), std::string::npos);
  md.replace(md.find(v), v.size(), "qlab VERSION from");
  const std::string golden = read(test::golden_dir() + "/report.md");
  if (md != golden) write_file((dir.path().parent_path() / "qlab-report.md.actual").string(), md);
  EXPECT_EQ(md, golden) << "the new page is in "
                        << (dir.path().parent_path() / "qlab-report.md.actual");
}

TEST(Report, EveryPlotKindDrawsPngAndSvg) {
  TempDir dir;
  write_report(spec_in(dir));
  for (const char* stem : {"acc", "latency", "heat", "size", "training"})
    for (const char* ext : {".png", ".svg", ".dat", ".gp"}) {
      const auto f = dir.file(std::string("reports/golden/plots/") + stem + ext);
      ASSERT_TRUE(std::filesystem::exists(f)) << f;
      EXPECT_GT(std::filesystem::file_size(f), 0u) << f;
    }
  const std::string png = read(dir.file("reports/golden/plots/acc.png"));
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

TEST(Report, PlotErrorsNameThePlotAndField) {
  TempDir dir;
  auto spec = spec_in(dir);
  spec.plots = {{"line", "acc", "", "quantizer.weight_bits", "acuracy", "", "", "", "", false}};
  EXPECT_EQ(error_of([&] { write_report(spec); }),
            "plot 'acc': no measured row has all of its fields (quantizer.weight_bits acuracy )");
  spec.plots = {{"pie", "p", "", "x", "y", "", "", "", "", false}};
  EXPECT_NE(error_of([&] { write_report(spec); }).find("unknown kind 'pie'"), std::string::npos);
  spec.plots = {{"line", "../escape", "", "x", "y", "", "", "", "", false}};
  EXPECT_NE(error_of([&] { write_report(spec); }).find("without '/'"), std::string::npos);
  spec.name = "../outside";
  EXPECT_NE(error_of([&] { write_report(spec); }).find("without '/'"), std::string::npos);
}

TEST(Report, CsvHasFixedColumnsMetricsAndOptions) {
  const std::string csv = rows_csv(golden_rows());
  const std::string header = csv.substr(0, csv.find('\n'));
  EXPECT_EQ(
      header.rfind("point.label,point.status,model,dataset,quantizer,backend,mode,accuracy,", 0),
      0u)
      << header;
  EXPECT_NE(header.find(",quantizer.weight_bits,"), std::string::npos);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 10);  // header + 9 rows
  EXPECT_NE(csv.find("static weight_bits=3,failed,lenet"), std::string::npos);
}

TEST(Report, RowsJsonWritesEachBulkyValueOnce) {
  const nlohmann::json weight = {
      {"weight_bits", 4},
      {"weight_scale", {0.1234567890123, 0.5, 0.25, 0.125, 1.5, 2.5, 3.5, 4.5}},
      {"weight_zero_point", {0, 0, 0, 0, 0, 0, 0, 0}}};
  std::vector<nlohmann::json> rows;
  for (double in_scale : {0.02, 0.04}) {
    nlohmann::json layer = weight;
    layer["input_bits"] = 8;
    layer["input_scale"] = in_scale;
    rows.push_back({{"model", "lenet"},
                    {"graph", "LeNet(\n  (conv): Conv2d(1, 6, kernel_size=(5, 5))\n)"},
                    {"calibration", {{"conv", layer}}},
                    {"samples", {{"width", 2}, {"height", 1}, {"originals", {0, 255}}}}});
  }
  const std::string text = rows_json(rows);
  const auto doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["graphs"]["lenet"], rows[0]["graph"]);
  ASSERT_EQ(doc["rows"].size(), 2u);
  const auto resolve = [&](const nlohmann::json& v) {
    const std::string name = v.get<std::string>();
    EXPECT_EQ(name.rfind("shared/", 0), 0u) << name;
    return doc["shared"].at(std::stoul(name.substr(7)));
  };
  const auto &a = doc["rows"][0], &b = doc["rows"][1];
  EXPECT_FALSE(a.contains("graph"));
  // One weight part for both rows; each keeps its own activation part.
  EXPECT_EQ(a["calibration"]["conv"]["weight"], b["calibration"]["conv"]["weight"]);
  const auto w = resolve(a["calibration"]["conv"]["weight"]);
  EXPECT_EQ(w["weight_bits"], 4);
  EXPECT_EQ(resolve(w["weight_scale"]),
            nlohmann::json({0.123456789, 0.5, 0.25, 0.125, 1.5, 2.5, 3.5, 4.5}));
  EXPECT_EQ(w["weight_zero_point"], nlohmann::json({0, 0, 0, 0, 0, 0, 0, 0}));  // short: inline
  EXPECT_EQ(a["calibration"]["conv"]["activations"]["input_scale"], 0.02);      // short: inline
  EXPECT_EQ(b["calibration"]["conv"]["activations"]["input_scale"], 0.04);
  EXPECT_EQ(a["samples"]["images"], 2);
  EXPECT_FALSE(a["samples"].contains("originals"));
  // One row per line.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'),
            6 + static_cast<long>(doc["shared"].size()));
}

TEST(Report, VaeSamplesBecomeAnImageGrid) {
  auto model = build_registry().model("vae");
  const Graph graph =
      model->build(resolve(model->options(), {}), {"fashion-mnist", {1, 28, 28}, 10});
  torch::manual_seed(1);
  GraphModule module(graph);
  module->eval();
  Dataset test{torch::rand({20, 1, 28, 28}), torch::zeros({20}, torch::kLong)};
  auto exe = float_executable(module);
  const auto s = reconstruction_samples(*exe, test, &module);
  ASSERT_EQ(s["originals"].size(), 8u * 784);
  ASSERT_EQ(s["reconstructions"].size(), 8u * 784);
  ASSERT_EQ(s["prior"].size(), 16u * 784);
  for (const char* k : {"originals", "reconstructions", "prior"})
    for (int v : s[k]) ASSERT_TRUE(v >= 0 && v <= 255) << k;
  EXPECT_NE(s["prior"], s["reconstructions"]);
  EXPECT_EQ(s, reconstruction_samples(*exe, test, &module)) << "seeded: the same images every time";
  EXPECT_FALSE(reconstruction_samples(*exe, test, nullptr).contains("prior"));

  TempDir dir;
  nlohmann::json row = {{"model", "vae"}, {"mode", "fp32"}, {"samples", s}};
  write_plot({"images", "grid", "", "", "", "", "", "", "", false}, {row}, dir.path().string());
  EXPECT_GT(std::filesystem::file_size(dir.file("plots/grid.png")), 1000u);
  // The pixels beside it as a binary image: 8 images a strip; the test images,
  // their reconstructions, and two strips of samples from the prior.
  const std::string pgm = read(dir.file("plots/grid.pgm"));
  const std::string header = "P5\n224 112\n255\n";
  ASSERT_EQ(pgm.substr(0, header.size()), header);
  EXPECT_EQ(pgm.size(), header.size() + 224u * 112u);
  EXPECT_NE(error_of([&] {
              write_plot({"images", "none", "", "", "", "", "", "", "", false}, golden_rows(),
                         dir.path().string());
            }).find("no row carries images"),
            std::string::npos);
}

TEST(Report, RowFieldFindsMetricsOptionsAndTopLevelFields) {
  const auto rows = golden_rows();
  EXPECT_EQ(row_field(rows[1], "quantizer"), "dynamic");
  EXPECT_EQ(row_field(rows[1], "quantizer.weight_bits"), 8);
  EXPECT_TRUE(row_field(rows[1], "accuracy").is_number());
  EXPECT_EQ(row_field(rows[1], "point.label"), "dynamic weight_bits=8");
  EXPECT_TRUE(row_field(rows[0], "quantizer.weight_bits").is_null());
}

}  // namespace
}  // namespace qlab::test
