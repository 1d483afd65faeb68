#include "lua/tables.hpp"

#include "lua/converter.hpp"
#include "lua/source.hpp"

#include <qlab/error.hpp>
#include <qlab/mixed_precision_search.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <lua.hpp>

#include <algorithm>
#include <map>

namespace qlab {
namespace {

RawSection* section_of(Experiment& ex, const std::string& name) {
  if (name == "model") return &ex.model;
  if (name == "dataset") return &ex.dataset;
  if (name == "train") return &ex.train;
  if (name == "quantizer") return &ex.quantizer;
  if (name == "backend") return &ex.backend;
  if (name == "metrics") return &ex.metrics;
  return nullptr;
}

// A table's fields as a RawSection, skipping `skip` (handled by the caller).
RawSection section_from(lua_State* L, int index, const std::string& name, const SourceLoc& at,
                        const std::vector<std::string>& skip = {}) {
  RawSection s{name, at, {}};
  for_each_field(L, index, name, [&](const std::string& key) {
    if (std::find(skip.begin(), skip.end(), key) != skip.end()) return;
    s.values[key] = {value_at(L, -1, name + " " + key), at};
  });
  return s;
}

Schema plot_schema() {
  Schema s;
  s.string("kind", "line", "plot kind", plot_kinds())
      .string("name", "", "file stem under plots/")
      .string("title", "", "title")
      .string("x", "", "field on the x axis")
      .string("y", "", "field on the y axis")
      .string("z", "", "heatmap: field shown as colour")
      .string("series", "", "line: one line per value; scatter: point labels")
      .string("xlabel", "", "x axis label (default: x)")
      .string("ylabel", "", "y axis label (default: y)")
      .boolean("logx", false, "log2 x axis");
  return s;
}

PlotSpec plot_spec(const Options& o) {
  PlotSpec p;
  p.kind = o.get<std::string>("kind");
  p.name = o.get<std::string>("name");
  p.title = o.get<std::string>("title");
  p.x = o.get<std::string>("x");
  p.y = o.get<std::string>("y");
  p.z = o.get<std::string>("z");
  p.series = o.get<std::string>("series");
  p.xlabel = o.get<std::string>("xlabel");
  p.ylabel = o.get<std::string>("ylabel");
  p.logx = o.get<bool>("logx");
  return p;
}

Value parse_word(const std::string& text, ValueType type, const std::string& word) {
  auto bad = [&] {
    return Error(fmt::format("script argument '{}': expected {}", word, to_string(type)));
  };
  try {
    std::size_t used = 0;
    switch (type) {
      case ValueType::integer: {
        const auto v = std::stoll(text, &used);
        if (used != text.size()) throw bad();
        return static_cast<std::int64_t>(v);
      }
      case ValueType::number: {
        const auto v = std::stod(text, &used);
        if (used != text.size()) throw bad();
        return v;
      }
      case ValueType::boolean:
        if (text == "true" || text == "1") return true;
        if (text == "false" || text == "0") return false;
        throw bad();
      case ValueType::string:
        return text;
      case ValueType::table_list:
        throw bad();
      case ValueType::number_list: {  // the words of a string list, each a number
        const Value words = parse_word(text, ValueType::string_list, word);
        std::vector<double> out;
        for (const auto& item : std::get<std::vector<std::string>>(words))
          out.push_back(std::get<double>(parse_word(item, ValueType::number, word)));
        return out;
      }
      case ValueType::string_list: {
        std::vector<std::string> out;
        for (std::size_t start = 0; start <= text.size();) {
          const auto comma = text.find(',', start);
          out.push_back(
              text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
        return out;
      }
    }
  } catch (const std::logic_error&) {  // stoll/stod: no digits, or out of range
    throw bad();
  }
  throw bad();
}

}  // namespace

Experiment experiment_from(lua_State* L, int index, const SourceLoc& at, std::string* sweep) {
  if (lua_type(L, index) != LUA_TTABLE)
    throw Error(fmt::format("{}: an experiment must be a table of sections, found {}", at.str(),
                            luaL_typename(L, index)));
  Experiment ex;
  ex.source = at.file;
  for (const char* name : {"model", "dataset", "train", "quantizer", "backend", "metrics"})
    *section_of(ex, name) = RawSection{name, at, {}};
  for_each_field(L, index, "experiment", [&](const std::string& key) {
    if (key == "sweep" && sweep) {
      *sweep = string_at(L, -1, "sweep");
      return;
    }
    RawSection* s = section_of(ex, key);
    if (!s)
      throw Error(
          fmt::format("{}: unknown section '{}' (known: backend, dataset, metrics, model, "
                      "quantizer, train{})",
                      at.str(), key, sweep ? ", sweep" : ""));
    if (lua_type(L, -1) == LUA_TSTRING) {  // model = "lenet" is model = {name = "lenet"}
      s->values["name"] = {std::string(lua_tostring(L, -1)), at};
      return;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
      throw Error(fmt::format("{}: '{}' must be a table of options, found {}", at.str(), key,
                              luaL_typename(L, -1)));
    *s = section_from(L, lua_gettop(L), key, at);
  });
  return ex;
}

std::vector<GridAxis> grid_from(lua_State* L, int index) {
  if (lua_type(L, index) != LUA_TTABLE)
    throw Error(
        fmt::format("qlab.sweep grid: expected a table, found {}", luaL_typename(L, index)));
  std::map<std::string, GridAxis> axes;  // sorted: Lua's own order is arbitrary
  for_each_field(L, index, "qlab.sweep grid", [&](const std::string& key) {
    const std::string what = "qlab.sweep grid[\"" + key + "\"]";
    if (lua_type(L, -1) != LUA_TTABLE)
      throw Error(
          fmt::format("{}: expected a list of values, found {}", what, luaL_typename(L, -1)));
    GridAxis axis{key, {}};
    const int t = lua_gettop(L);
    const auto n = lua_rawlen(L, t);
    for (lua_Unsigned k = 1; k <= n; ++k) {
      lua_rawgeti(L, t, static_cast<lua_Integer>(k));
      axis.values.push_back(value_at(L, -1, what));
      lua_pop(L, 1);
    }
    axes[key] = std::move(axis);
  });
  std::vector<GridAxis> out;
  for (auto& [k, a] : axes) out.push_back(std::move(a));
  return out;
}

bool call_predicate(lua_State* L, int fn, const SweepPoint& point) {
  lua_pushvalue(L, fn);
  lua_newtable(L);
  for (const auto& [key, value] : point.assignment) {
    push_value(L, value);
    lua_setfield(L, -2, key.c_str());
    const auto dot = key.find('.');
    const std::string section = key.substr(0, dot);
    if (lua_getfield(L, -1, section.c_str()) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, section.c_str());
    }
    push_value(L, value);
    lua_setfield(L, -2, key.substr(dot + 1).c_str());
    lua_pop(L, 1);
  }
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    std::string message = lua_isstring(L, -1) ? lua_tostring(L, -1) : "error in qlab.sweep where";
    lua_pop(L, 1);
    throw Error(message);
  }
  const bool keep = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return keep;
}

PlotSpec plot_from(lua_State* L, int index, const SourceLoc& at, std::vector<nlohmann::json>* rows,
                   std::string* dir) {
  index = lua_absindex(L, index);
  if (rows) {
    lua_pushstring(L, "rows");
    lua_rawget(L, index);
    if (!lua_isnil(L, -1)) *rows = rows_from(L, -1);
    lua_pop(L, 1);
  }
  if (dir) {
    lua_pushstring(L, "dir");
    lua_rawget(L, index);
    if (!lua_isnil(L, -1)) *dir = string_at(L, -1, "qlab.plot dir");
    lua_pop(L, 1);
  }
  std::vector<std::string> skip;
  if (rows) skip.push_back("rows");
  if (dir) skip.push_back("dir");
  return plot_spec(resolve(plot_schema(), section_from(L, index, "plot", at, skip)));
}

ReportSpec report_from(lua_State* L, int index, const SourceLoc& at, ResultStore& store) {
  index = lua_absindex(L, index);
  Schema schema;
  schema.string("name", "", "folder under reports/")
      .string("title", "", "page title")
      .string("intro", "", "Markdown paragraph(s) at the top")
      .string_list("sweeps", {}, "sweeps whose stored rows to report (instead of rows)")
      .string_list("columns", {}, "options to show as columns (default: those that vary)");
  ReportSpec spec;
  lua_pushstring(L, "rows");
  lua_rawget(L, index);
  if (!lua_isnil(L, -1)) spec.rows = rows_from(L, -1);
  lua_pop(L, 1);
  lua_pushstring(L, "plots");
  if (lua_rawget(L, index) == LUA_TTABLE) {
    const int t = lua_gettop(L);
    const auto n = lua_rawlen(L, t);
    for (lua_Unsigned k = 1; k <= n; ++k) {
      lua_rawgeti(L, t, static_cast<lua_Integer>(k));
      if (lua_type(L, -1) != LUA_TTABLE)
        throw Error(fmt::format("{}: qlab.report plots: each plot must be a table", at.str()));
      spec.plots.push_back(plot_from(L, -1, at, nullptr, nullptr));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    throw Error(fmt::format("{}: qlab.report plots: expected a list of plot tables", at.str()));
  }
  lua_pop(L, 1);
  const Options o = resolve(schema, section_from(L, index, "report", at, {"rows", "plots"}));
  spec.name = o.get<std::string>("name");
  spec.title = o.get<std::string>("title");
  spec.intro = o.get<std::string>("intro");
  spec.columns = o.get<std::vector<std::string>>("columns");
  if (spec.name.empty()) throw Error(fmt::format("{}: [report] name is required", at.str()));
  for (const auto& sweep : o.get<std::vector<std::string>>("sweeps")) {
    auto rows = rows_of(store.points({sweep, "", "", "", ""}));
    if (rows.empty())
      throw Error(
          fmt::format("{}: [report] sweeps: no stored point of sweep '{}'", at.str(), sweep));
    spec.rows.insert(spec.rows.end(), rows.begin(), rows.end());
  }
  if (spec.rows.empty()) throw Error(fmt::format("{}: qlab.report needs rows or sweeps", at.str()));
  return spec;
}

void push_args(lua_State* L, int index, const std::vector<std::string>& words) {
  const SourceLoc at = caller(L);
  Schema schema;
  RawSection defaults = section_from(L, index, "script arguments", at);
  for (const auto& [k, v] : defaults.values)
    schema.add({k, type_of(v.value), v.value, "", {}, {}, {}});
  RawSection given{"script arguments", at, {}};
  for (const auto& word : words) {
    const auto eq = word.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(fmt::format("script argument '{}': expected key=value", word));
    const std::string key = word.substr(0, eq);
    const OptionSpec* spec = schema.find(key);
    if (!spec) {
      std::vector<std::string> known;
      for (const auto& s : schema.specs()) known.push_back(s.name);
      throw Error(fmt::format("script argument '{}': unknown key '{}' (known: {})", word, key,
                              known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
    }
    given.values[key] = {parse_word(word.substr(eq + 1), spec->type, word), {"command line", 0, 0}};
  }
  push_json(L, resolve(schema, given).to_json());
}

namespace {

// A number or a list of numbers, as doubles; `what` names it in errors.
std::vector<double> numbers_at(lua_State* L, int index, const std::string& what) {
  const nlohmann::json j = json_at(L, index);
  std::vector<double> out;
  for (const auto& v : j.is_array() ? j : nlohmann::json::array({j})) {
    if (!v.is_number())
      throw Error(
          fmt::format("{}: expected a number or a list of numbers, found {}", what, v.dump()));
    out.push_back(v.get<double>());
  }
  if (out.empty()) throw Error(what + ": the list is empty");
  return out;
}

}  // namespace

MixedPrecisionSpec mixed_precision_from(lua_State* L, int index, const SourceLoc& at,
                                        Experiment* base) {
  index = lua_absindex(L, index);
  const std::string fn = "qlab.mixed_precision";
  MixedPrecisionSpec spec;
  bool has_base = false, has_budget = false;
  Schema schema;
  schema
      .string("method", "loss", "sensitivity: loss (measured) or hessian (estimated)",
              {"loss", "hessian"})
      .string("allocation", "exact", "exact (dynamic programming) or greedy", {"exact", "greedy"})
      .integer("samples", 512, "calibration images the sensitivities are measured on", 1, 1000000);
  for_each_field(L, index, fn, [&](const std::string& key) {
    if (key == "base") {
      if (lua_type(L, -1) != LUA_TTABLE)
        throw Error(fmt::format("{} base: expected an experiment table, found {}", fn,
                                luaL_typename(L, -1)));
      *base = experiment_from(L, lua_gettop(L), at, nullptr);
      has_base = true;
    } else if (key == "bits") {
      spec.bits.clear();
      for (double b : numbers_at(L, -1, fn + " bits")) {
        if (b != static_cast<int>(b))
          throw Error(fmt::format("{} bits: {} is not a whole number of bits", fn, b));
        spec.bits.push_back(static_cast<int>(b));
      }
    } else if (key == "budget") {
      if (lua_type(L, -1) != LUA_TTABLE)
        throw Error(
            fmt::format("{} budget: expected a table such as {{ size_ratio = 0.15 }}, "
                        "found {}",
                        fn, luaL_typename(L, -1)));
      for_each_field(L, lua_gettop(L), fn + " budget", [&](const std::string& kind) {
        if (has_budget)
          throw Error(fmt::format("{} budget: give one of size_ratio and bops_ratio", fn));
        if (kind == "size_ratio")
          spec.budget_kind = BudgetKind::size_ratio;
        else if (kind == "bops_ratio")
          spec.budget_kind = BudgetKind::bops_ratio;
        else
          throw Error(
              fmt::format("{} budget: unknown key '{}' (known: bops_ratio, size_ratio)", fn, kind));
        spec.budgets = numbers_at(L, -1, fn + " budget " + kind);
        has_budget = true;
      });
    }
  });
  if (!has_base) throw Error(fn + ": 'base' (an experiment table) is required");
  if (!has_budget) throw Error(fn + ": 'budget' (e.g. { size_ratio = 0.15 }) is required");
  const Options o = resolve(schema, section_from(L, index, fn, at, {"base", "bits", "budget"}));
  spec.method =
      o.get<std::string>("method") == "loss" ? SensitivityMethod::loss : SensitivityMethod::hessian;
  spec.greedy = o.get<std::string>("allocation") == "greedy";
  spec.samples = o.get<std::int64_t>("samples");
  return spec;
}

}  // namespace qlab
