#include "lua_values.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <lua.hpp>

#include <algorithm>
#include <map>

namespace qlab {
namespace {

constexpr int kMaxDepth = 32;  // tables nest no deeper in a row; deeper is a cycle

RawSection* section_of(Experiment& ex, const std::string& name) {
  if (name == "model") return &ex.model;
  if (name == "dataset") return &ex.dataset;
  if (name == "train") return &ex.train;
  if (name == "quantizer") return &ex.quantizer;
  if (name == "backend") return &ex.backend;
  if (name == "metrics") return &ex.metrics;
  return nullptr;
}

void push_value(lua_State* L, const Value& v) {
  if (const auto* b = std::get_if<bool>(&v))
    lua_pushboolean(L, *b);
  else if (const auto* i = std::get_if<std::int64_t>(&v))
    lua_pushinteger(L, *i);
  else if (const auto* d = std::get_if<double>(&v))
    lua_pushnumber(L, *d);
  else if (const auto* s = std::get_if<std::string>(&v))
    lua_pushlstring(L, s->data(), s->size());
  else if (const auto* t = std::get_if<TableList>(&v))
    push_json(L, t->entries);
  else {
    const auto& list = std::get<std::vector<std::string>>(v);
    lua_createtable(L, static_cast<int>(list.size()), 0);
    for (std::size_t k = 0; k < list.size(); ++k) {
      lua_pushlstring(L, list[k].data(), list[k].size());
      lua_rawseti(L, -2, static_cast<lua_Integer>(k + 1));
    }
  }
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

std::string source_name(const lua_Debug& ar) {
  if (ar.source && (ar.source[0] == '@' || ar.source[0] == '=')) return ar.source + 1;
  return ar.short_src;
}

std::string with_full_chunk_name(const std::string& message, const std::string& chunk) {
  if (message.rfind("...", 0) != 0) return message;
  for (auto colon = message.find(':', 3); colon != std::string::npos;
       colon = message.find(':', colon + 1)) {
    const std::string tail = message.substr(3, colon - 3);
    if (chunk.size() > tail.size() &&
        chunk.compare(chunk.size() - tail.size(), tail.size(), tail) == 0)
      return chunk + message.substr(colon);
  }
  return message;
}

SourceLoc caller(lua_State* L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) return {source_name(ar), ar.currentline, 0};
  }
  return {"(script)", 0, 0};
}

void for_each_field(lua_State* L, int index, const std::string& what,
                    const std::function<void(const std::string&)>& f) {
  const int t = lua_absindex(L, index);
  if (lua_type(L, t) != LUA_TTABLE)
    throw Error(fmt::format("{}: expected a table, found {}", what, luaL_typename(L, t)));
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      throw Error(
          fmt::format("{}: keys must be names; found a {} key", what, luaL_typename(L, -2)));
    const std::string key = lua_tostring(L, -2);
    const int top = lua_gettop(L);
    f(key);
    lua_settop(L, top - 1);
  }
}

std::string string_at(lua_State* L, int index, const std::string& what) {
  if (lua_type(L, index) != LUA_TSTRING)
    throw Error(fmt::format("{}: expected a string, found {}", what, luaL_typename(L, index)));
  return lua_tostring(L, index);
}

Value value_at(lua_State* L, int index, const std::string& what) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TBOOLEAN:
      return static_cast<bool>(lua_toboolean(L, index));
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) return static_cast<std::int64_t>(lua_tointeger(L, index));
      return static_cast<double>(lua_tonumber(L, index));
    case LUA_TSTRING:
      return std::string(lua_tostring(L, index));
    case LUA_TTABLE: {
      std::vector<std::string> list;
      const auto n = lua_rawlen(L, index);
      lua_rawgeti(L, index, 1);
      const bool of_tables = lua_type(L, -1) == LUA_TTABLE;
      lua_pop(L, 1);
      if (of_tables) {
        auto entries = json_at(L, index, 0);
        if (!entries.is_array())
          throw Error(
              fmt::format("{}: expected a list of tables, found a table with named keys", what));
        return TableList{std::move(entries)};
      }
      std::size_t fields = 0;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        ++fields;
        lua_pop(L, 1);
      }
      for (lua_Unsigned k = 1; k <= n; ++k) {
        lua_rawgeti(L, index, static_cast<lua_Integer>(k));
        if (lua_type(L, -1) != LUA_TSTRING) {
          const std::string found = luaL_typename(L, -1);
          lua_pop(L, 1);
          throw Error(
              fmt::format("{}: expected a list of strings, found a {} element", what, found));
        }
        list.emplace_back(lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      if (fields != n)
        throw Error(
            fmt::format("{}: expected a list of strings, found a table with named keys", what));
      return list;
    }
    default:
      throw Error(fmt::format("{}: expected a value, found {}", what, luaL_typename(L, index)));
  }
}

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

void push_json(lua_State* L, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      lua_createtable(L, 0, static_cast<int>(v.size()));
      for (const auto& [k, x] : v.items()) {
        push_json(L, x);
        lua_setfield(L, -2, k.c_str());
      }
      break;
    case nlohmann::json::value_t::array:
      lua_createtable(L, static_cast<int>(v.size()), 0);
      for (std::size_t i = 0; i < v.size(); ++i) {
        push_json(L, v[i]);
        lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
      }
      break;
    case nlohmann::json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      lua_pushinteger(L, v.get<lua_Integer>());
      break;
    case nlohmann::json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      break;
    case nlohmann::json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      break;
    }
    default:
      lua_pushnil(L);
  }
}

nlohmann::json json_at(lua_State* L, int index, int depth) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return nullptr;
    case LUA_TBOOLEAN:
      return static_cast<bool>(lua_toboolean(L, index));
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) return static_cast<std::int64_t>(lua_tointeger(L, index));
      return static_cast<double>(lua_tonumber(L, index));
    case LUA_TSTRING:
      return std::string(lua_tostring(L, index));
    case LUA_TTABLE: {
      if (depth > kMaxDepth) throw Error("a table nests too deep (a cycle?)");
      const auto n = lua_rawlen(L, index);
      nlohmann::json obj = nlohmann::json::object(), arr = nlohmann::json::array();
      std::size_t fields = 0;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        ++fields;
        if (lua_type(L, -2) == LUA_TSTRING) obj[lua_tostring(L, -2)] = json_at(L, -1, depth + 1);
        lua_pop(L, 1);
      }
      if (n > 0 && fields == n) {
        for (lua_Unsigned k = 1; k <= n; ++k) {
          lua_rawgeti(L, index, static_cast<lua_Integer>(k));
          arr.push_back(json_at(L, -1, depth + 1));
          lua_pop(L, 1);
        }
        return arr;
      }
      return obj;
    }
    default:
      throw Error(fmt::format("a {} cannot be stored in a result", luaL_typename(L, index)));
  }
}

void push_point(lua_State* L, const PointRecord& point) {
  const auto rows = rows_of({point});
  nlohmann::json row = rows.back();
  if (rows.size() > 1) row["baseline"] = rows.front();
  row["status"] = to_string(point.status);
  row["message"] = point.message;
  push_json(L, row);
}

void push_rows(lua_State* L, const std::vector<nlohmann::json>& rows) {
  lua_createtable(L, static_cast<int>(rows.size()), 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    push_json(L, rows[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

std::vector<nlohmann::json> rows_from(lua_State* L, int index) {
  if (lua_type(L, index) != LUA_TTABLE)
    throw Error(fmt::format("rows: expected a list of rows, found {}", luaL_typename(L, index)));
  nlohmann::json list = json_at(L, index);
  if (!list.is_array()) throw Error("rows: expected a list of rows (as qlab.sweep returns)");
  std::vector<nlohmann::json> out;
  for (auto& row : list) {
    if (!row.is_object()) throw Error("rows: each row must be a table");
    if (row.contains("baseline")) {
      out.push_back(row["baseline"]);
      row.erase("baseline");
    }
    out.push_back(std::move(row));
  }
  return out;
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

}  // namespace qlab
