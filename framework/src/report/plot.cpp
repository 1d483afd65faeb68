// Plots through gnuplot: a data file and a script beside each image, so a
// reader can restyle a plot without qlab.
#include "io/archive_io.hpp"

#include <qlab/error.hpp>
#include <qlab/report.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <spawn.h>
#include <sys/wait.h>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

extern char** environ;

namespace qlab {
namespace {

namespace fs = std::filesystem;

std::string gp_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

double number(const nlohmann::json& row, const std::string& field, const PlotSpec& spec) {
  const auto v = row_field(row, field);
  if (!v.is_number())
    throw Error(fmt::format("plot '{}': field '{}' is {} in a row of {} ({}); expected a number",
                            spec.name, field, v.is_null() ? "missing" : "not a number",
                            row.value("model", "?"), row.value("quantizer", "?")));
  return v.get<double>();
}

void need(const std::string& value, const char* what, const PlotSpec& spec) {
  if (value.empty())
    throw Error(fmt::format("plot '{}' ({}): '{}' is required", spec.name, spec.kind, what));
}

// Distinct values of a field in first-seen order, numbers sorted ascending.
std::vector<nlohmann::json> categories(const std::vector<const nlohmann::json*>& rows,
                                       const std::string& field) {
  std::vector<nlohmann::json> out;
  for (const auto* r : rows) {
    auto v = row_field(*r, field);
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (std::all_of(out.begin(), out.end(), [](const auto& v) { return v.is_number(); }))
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.template get<double>() < b.template get<double>();
    });
  return out;
}

std::string tics(const std::vector<nlohmann::json>& values) {
  std::string s = "(";
  for (std::size_t i = 0; i < values.size(); ++i)
    s += fmt::format("{}{} {}", i ? ", " : "", gp_string(field_text(values[i])), i);
  return s + ")";
}

struct Script {
  std::string data, commands;
};

Script line_plot(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  need(spec.x, "x", spec);
  need(spec.y, "y", spec);
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  std::vector<std::string> order;
  for (const auto* r : rows) {
    const std::string key = spec.series.empty() ? spec.y : field_text(row_field(*r, spec.series));
    if (!series.count(key)) order.push_back(key);
    series[key].emplace_back(number(*r, spec.x, spec), number(*r, spec.y, spec));
  }
  Script s;
  std::vector<std::string> plots;
  for (std::size_t i = 0; i < order.size(); ++i) {
    auto& pts = series[order[i]];
    std::sort(pts.begin(), pts.end());
    s.data += fmt::format("# {}\n", order[i]);
    for (const auto& [x, y] : pts) s.data += fmt::format("{:g}\t{:g}\n", x, y);
    s.data += "\n\n";
    plots.push_back(fmt::format("DATA index {} using 1:2 with linespoints lw 2 pt 7 title {}", i,
                                gp_string(order[i])));
  }
  if (spec.logx) s.commands += "set logscale x 2\n";
  s.commands += "set key outside right\nset grid\nplot " +
                fmt::format("{}", fmt::join(plots, ", \\\n     ")) + "\n";
  return s;
}

Script bar_plot(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  need(spec.x, "x", spec);
  need(spec.y, "y", spec);
  Script s;
  std::vector<std::string> labels;  // points share their baseline: one bar each
  for (const auto* r : rows) {
    const std::string label = field_text(row_field(*r, spec.x));
    if (std::find(labels.begin(), labels.end(), label) != labels.end()) continue;
    labels.push_back(label);
    s.data += fmt::format("{}\t{:g}\n", gp_string(label), number(*r, spec.y, spec));
  }
  s.commands =
      "set style fill solid 0.6 border -1\nset boxwidth 0.6\nset yrange [0:*]\nset grid y\n"
      "set xtics rotate by -20\nset bmargin 6\n"
      "plot DATA using 0:2:xtic(1) with boxes notitle, \\\n"
      "     DATA using 0:2:(sprintf(\"%.3g\", $2)) with labels offset 0,0.8 notitle\n";
  return s;
}

Script heat_map(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  need(spec.x, "x", spec);
  need(spec.y, "y", spec);
  need(spec.z, "z", spec);
  const auto xs = categories(rows, spec.x), ys = categories(rows, spec.y);
  Script s;
  for (const auto* r : rows) {
    const auto xi = std::find(xs.begin(), xs.end(), row_field(*r, spec.x)) - xs.begin();
    const auto yi = std::find(ys.begin(), ys.end(), row_field(*r, spec.y)) - ys.begin();
    s.data += fmt::format("{}\t{}\t{:g}\n", xi, yi, number(*r, spec.z, spec));
  }
  s.commands = fmt::format(
      "set xtics {}\nset ytics {}\nset xrange [-0.5:{}.5]\nset yrange [-0.5:{}.5]\n"
      "set palette defined (0 \"#b2182b\", 0.5 \"#f7f7f7\", 1 \"#2166ac\")\nset cblabel {}\n"
      "plot DATA using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette notitle, "
      "\\\n"
      "     DATA using 1:2:(sprintf(\"%.1f\", $3)) with labels notitle\n",
      tics(xs), tics(ys), xs.size() - 1, ys.size() - 1, gp_string(spec.z));
  return s;
}

Script scatter_plot(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  need(spec.x, "x", spec);
  need(spec.y, "y", spec);
  Script s;
  for (const auto* r : rows)
    s.data +=
        fmt::format("{:g}\t{:g}\t{}\n", number(*r, spec.x, spec), number(*r, spec.y, spec),
                    gp_string(spec.series.empty() ? "" : field_text(row_field(*r, spec.series))));
  if (spec.logx) s.commands += "set logscale x 2\n";
  s.commands +=
      "set grid\nset offsets graph 0.08, graph 0.08, graph 0.08, graph 0.08\n"
      "plot DATA using 1:2 with points pt 7 ps 1.5 notitle, \\\n"
      "     DATA using 1:2:3 with labels offset 0,1 font \",8\" notitle\n";
  return s;
}

Script training_curves(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  const std::string y = spec.y.empty() ? "loss" : spec.y;
  Script s;
  std::vector<std::string> seen, plots;
  for (const auto* r : rows) {
    if (!r->contains("training") || (*r)["training"].empty()) continue;
    const std::string key =
        fmt::format("{} on {}", r->value("model", "?"), r->value("dataset", "?"));
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    s.data += fmt::format("# {}\n", key);
    for (const auto& e : (*r)["training"])
      s.data += fmt::format("{}\t{:g}\n", e.value("epoch", 0), e.value(y, 0.0));
    s.data += "\n\n";
    plots.push_back(fmt::format("DATA index {} using 1:2 with linespoints lw 2 pt 7 title {}",
                                seen.size(), gp_string(key)));
    seen.push_back(key);
  }
  if (plots.empty())
    throw Error(fmt::format("plot '{}': no row carries training epochs", spec.name));
  s.commands =
      "set grid\nset xtics 1\nplot " + fmt::format("{}", fmt::join(plots, ", \\\n     ")) + "\n";
  return s;
}

// One strip of up to 8 images per line: the test images, each row's
// reconstructions of them, then samples from the prior.
Script image_grid(const PlotSpec& spec, const std::vector<const nlohmann::json*>& rows) {
  struct Strip {
    std::string label;
    std::vector<int> pixels;
  };
  std::vector<Strip> strips, prior_strips;
  std::vector<std::string> seen;  // points share their baseline: show it once
  std::int64_t w = 0, h = 0;
  for (const auto* r : rows) {
    if (!r->contains("samples") || !(*r)["samples"].is_object()) continue;
    const auto& s = (*r)["samples"];
    const std::string label =
        spec.series.empty() ? r->value("mode", "?") : field_text(row_field(*r, spec.series));
    if (std::find(seen.begin(), seen.end(), label) != seen.end()) continue;
    seen.push_back(label);
    w = s.value("width", 0);
    h = s.value("height", 0);
    if (strips.empty()) strips.push_back({"test images", s["originals"].get<std::vector<int>>()});
    strips.push_back({label, s["reconstructions"].get<std::vector<int>>()});
    if (s.contains("prior")) {
      const auto prior = s["prior"].get<std::vector<int>>();
      const auto half = prior.begin() + static_cast<std::ptrdiff_t>(prior.size() / 2);
      prior_strips.push_back({"samples (" + label + ")", {prior.begin(), half}});
      prior_strips.push_back({"", {half, prior.end()}});
    }
  }
  strips.insert(strips.end(), prior_strips.begin(), prior_strips.end());
  if (strips.empty() || w <= 0 || h <= 0)
    throw Error(
        fmt::format("plot '{}': no row carries images (only reconstruction models do)", spec.name));
  const std::int64_t per_line = static_cast<std::int64_t>(strips[0].pixels.size()) / (w * h);
  Script out;
  std::string tics, pixels;
  for (std::size_t l = 0; l < strips.size(); ++l) {
    const auto& px = strips[l].pixels;
    for (std::int64_t y = 0; y < h; ++y) {
      for (std::int64_t i = 0; i < per_line; ++i)
        for (std::int64_t x = 0; x < w; ++x) {
          const auto k = static_cast<std::size_t>((i * h + y) * w + x);
          pixels.push_back(static_cast<char>(k < px.size() ? px[k] : 0));
        }
    }
    if (!strips[l].label.empty())
      tics += fmt::format("{}{} {}", tics.empty() ? "" : ", ", gp_string(strips[l].label),
                          static_cast<std::int64_t>(l) * h + h / 2);
  }
  // The pixels as a binary PGM image, which gnuplot reads past its header.
  const std::int64_t width = per_line * w, height = static_cast<std::int64_t>(strips.size()) * h;
  const std::string header = fmt::format("P5\n{} {}\n255\n", width, height);
  out.data = header + pixels;
  out.commands = fmt::format(
      "set palette gray\nunset colorbox\nset cbrange [0:255]\nset size ratio -1\nunset xtics\n"
      "set ytics ({}) scale 0\nset yrange [{}:-0.5]\nset xrange [-0.5:{}]\n"
      "plot DATA binary skip={} array=({},{}) format='%uchar' with image notitle\n",
      tics, static_cast<double>(height) - 0.5, static_cast<double>(width) - 0.5, header.size(),
      width, height);
  return out;
}

void run_gnuplot(const fs::path& script) {
  const std::string file = script.filename().string();
  const std::string dir = script.parent_path().string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  char* argv[] = {const_cast<char*>("gnuplot"), const_cast<char*>(file.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw Error(fmt::format("{}: cannot start gnuplot ({}); install the gnuplot-nox package",
                            script.string(), std::strerror(rc)));
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(fmt::format("{}: gnuplot failed (status {})", script.string(), status));
}

}  // namespace

const std::vector<std::string>& plot_kinds() {
  static const std::vector<std::string> kinds{"line",    "bars",   "heatmap",
                                              "scatter", "curves", "images"};
  return kinds;
}

std::string plot_data_file(const PlotSpec& spec) {
  return spec.name + (spec.kind == "images" ? ".pgm" : ".dat");
}

std::string write_plot(const PlotSpec& spec, const std::vector<nlohmann::json>& all_rows,
                       const std::string& dir) {
  need(spec.name, "name", spec);
  if (std::find(plot_kinds().begin(), plot_kinds().end(), spec.kind) == plot_kinds().end())
    throw Error(fmt::format("plot '{}': unknown kind '{}' (known: {})", spec.name, spec.kind,
                            fmt::join(plot_kinds(), ", ")));
  if (spec.name.find_first_of("/\\ ") != std::string::npos)
    throw Error(fmt::format("plot '{}': a name is a file stem, without '/' or spaces", spec.name));
  // Failed and skipped points have no metrics to draw.
  std::vector<const nlohmann::json*> rows;
  for (const auto& r : all_rows)
    if (!r.contains("point") || r["point"].value("status", "ok") == "ok") rows.push_back(&r);
  if (rows.empty()) throw Error(fmt::format("plot '{}': no measured rows to draw", spec.name));

  // A plot shows the rows that have its fields: a float baseline has no
  // quantizer bits to place it on a bits axis.
  auto has = [&](const nlohmann::json* r) {
    for (const auto* f : {&spec.x, &spec.y, &spec.z})
      if (!f->empty() && row_field(*r, *f).is_null()) return false;
    return true;
  };
  if (spec.kind != "curves" && spec.kind != "images") {
    rows.erase(std::remove_if(rows.begin(), rows.end(), [&](const auto* r) { return !has(r); }),
               rows.end());
    if (rows.empty())
      throw Error(fmt::format("plot '{}': no measured row has all of its fields ({} {} {})",
                              spec.name, spec.x, spec.y, spec.z));
  }

  Script s;
  if (spec.kind == "line")
    s = line_plot(spec, rows);
  else if (spec.kind == "bars")
    s = bar_plot(spec, rows);
  else if (spec.kind == "heatmap")
    s = heat_map(spec, rows);
  else if (spec.kind == "scatter")
    s = scatter_plot(spec, rows);
  else if (spec.kind == "curves")
    s = training_curves(spec, rows);
  else
    s = image_grid(spec, rows);

  const fs::path plots = fs::path(dir) / "plots";
  fs::create_directories(plots);
  const std::string data_file = plot_data_file(spec);
  write_atomically((plots / data_file).string(), s.data);
  std::string gp = fmt::format("# made by qlab; run `gnuplot {}.gp` here to redraw\nDATA = {}\n",
                               spec.name, gp_string(data_file));
  gp += fmt::format("set title {}\nset xlabel {}\nset ylabel {}\n", gp_string(spec.title),
                    gp_string(!spec.xlabel.empty()    ? spec.xlabel
                              : spec.kind == "curves" ? "epoch"
                                                      : spec.x),
                    gp_string(!spec.ylabel.empty()                      ? spec.ylabel
                              : spec.kind == "curves" && spec.y.empty() ? "loss"
                                                                        : spec.y));
  gp += fmt::format("set terminal pngcairo size 900,540 noenhanced\nset output {}\n",
                    gp_string(spec.name + ".png"));
  gp += s.commands;
  gp += fmt::format(
      "set terminal svg size 900,540 dynamic noenhanced background rgb 'white'\nset output "
      "{}\nreplot\n",
      gp_string(spec.name + ".svg"));
  const fs::path script = plots / (spec.name + ".gp");
  write_atomically(script.string(), gp);
  run_gnuplot(script);
  return (plots / (spec.name + ".png")).string();
}

}  // namespace qlab
