#include "lua/converter.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>
#include <lua.hpp>

namespace qlab {
namespace {

constexpr int kMaxDepth = 32;  // tables nest no deeper in a row; deeper is a cycle

void push_value_unchecked(lua_State* L, const Value& v) {
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
  else if (const auto* numbers = std::get_if<std::vector<double>>(&v)) {
    lua_createtable(L, static_cast<int>(numbers->size()), 0);
    for (std::size_t k = 0; k < numbers->size(); ++k) {
      lua_pushnumber(L, (*numbers)[k]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(k + 1));
    }
  } else {
    const auto& list = std::get<std::vector<std::string>>(v);
    lua_createtable(L, static_cast<int>(list.size()), 0);
    for (std::size_t k = 0; k < list.size(); ++k) {
      lua_pushlstring(L, list[k].data(), list[k].size());
      lua_rawseti(L, -2, static_cast<lua_Integer>(k + 1));
    }
  }
}

// The boolean, number or string at absolute `index`.
Value scalar_at(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TBOOLEAN) return static_cast<bool>(lua_toboolean(L, index));
  if (lua_isinteger(L, index)) return static_cast<std::int64_t>(lua_tointeger(L, index));
  if (lua_type(L, index) == LUA_TNUMBER) return static_cast<double>(lua_tonumber(L, index));
  return std::string(lua_tostring(L, index));
}

Value value_at_unchecked(lua_State* L, int index, const std::string& what) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      return scalar_at(L, index);
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
      // A list of strings, or of numbers, as its first element says.
      lua_rawgeti(L, index, 1);
      const bool of_numbers = lua_type(L, -1) == LUA_TNUMBER;
      lua_pop(L, 1);
      const char* kind = of_numbers ? "numbers" : "strings";
      std::vector<double> numbers;
      for (lua_Unsigned k = 1; k <= n; ++k) {
        lua_rawgeti(L, index, static_cast<lua_Integer>(k));
        if (lua_type(L, -1) != (of_numbers ? LUA_TNUMBER : LUA_TSTRING)) {
          const std::string found = luaL_typename(L, -1);
          lua_pop(L, 1);
          throw Error(
              fmt::format("{}: expected a list of {}, found a {} element", what, kind, found));
        }
        if (of_numbers)
          numbers.push_back(lua_tonumber(L, -1));
        else
          list.emplace_back(lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      if (fields != n)
        throw Error(
            fmt::format("{}: expected a list of {}, found a table with named keys", what, kind));
      if (of_numbers) return numbers;
      return list;
    }
    default:
      throw Error(fmt::format("{}: expected a value, found {}", what, luaL_typename(L, index)));
  }
}

std::string string_at_unchecked(lua_State* L, int index, const std::string& what) {
  if (lua_type(L, index) != LUA_TSTRING)
    throw Error(fmt::format("{}: expected a string, found {}", what, luaL_typename(L, index)));
  return lua_tostring(L, index);
}

void for_each_field_unchecked(lua_State* L, int index, const std::string& what,
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

void push_json_unchecked(lua_State* L, const nlohmann::json& v) {
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

nlohmann::json json_at_unchecked(lua_State* L, int index, int depth) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return nullptr;
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      return to_json(scalar_at(L, index));
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

void push_point_unchecked(lua_State* L, const PointRecord& point) {
  const auto rows = rows_of({point});
  nlohmann::json row = rows.back();
  if (rows.size() > 1) row["baseline"] = rows.front();
  row["status"] = to_string(point.status);
  row["message"] = point.message;
  push_json(L, row);
}

void push_rows_unchecked(lua_State* L, const std::vector<nlohmann::json>& rows) {
  lua_createtable(L, static_cast<int>(rows.size()), 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    push_json(L, rows[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

std::vector<nlohmann::json> rows_from_unchecked(lua_State* L, int index) {
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

}  // namespace

void check_stack(lua_State* L, int expected, const char* function) {
  QLAB_CHECK(lua_gettop(L) == expected,
             fmt::format("{} left the Lua stack at {}, not {}", function, lua_gettop(L), expected));
}

void push_value(lua_State* L, const Value& v) {
  const int expected = lua_gettop(L) + 1;
  push_value_unchecked(L, v);
  check_stack(L, expected, "push_value");
}

Value value_at(lua_State* L, int index, const std::string& what) {
  const int expected = lua_gettop(L) + 0;
  auto out = value_at_unchecked(L, index, what);
  check_stack(L, expected, "value_at");
  return out;
}

std::string string_at(lua_State* L, int index, const std::string& what) {
  const int expected = lua_gettop(L) + 0;
  auto out = string_at_unchecked(L, index, what);
  check_stack(L, expected, "string_at");
  return out;
}

void for_each_field(lua_State* L, int index, const std::string& what,
                    const std::function<void(const std::string&)>& f) {
  const int expected = lua_gettop(L) + 0;
  for_each_field_unchecked(L, index, what, f);
  check_stack(L, expected, "for_each_field");
}

void push_json(lua_State* L, const nlohmann::json& v) {
  const int expected = lua_gettop(L) + 1;
  push_json_unchecked(L, v);
  check_stack(L, expected, "push_json");
}

nlohmann::json json_at(lua_State* L, int index, int depth) {
  const int expected = lua_gettop(L) + 0;
  auto out = json_at_unchecked(L, index, depth);
  check_stack(L, expected, "json_at");
  return out;
}

void push_point(lua_State* L, const PointRecord& point) {
  const int expected = lua_gettop(L) + 1;
  push_point_unchecked(L, point);
  check_stack(L, expected, "push_point");
}

void push_rows(lua_State* L, const std::vector<nlohmann::json>& rows) {
  const int expected = lua_gettop(L) + 1;
  push_rows_unchecked(L, rows);
  check_stack(L, expected, "push_rows");
}

std::vector<nlohmann::json> rows_from(lua_State* L, int index) {
  const int expected = lua_gettop(L) + 0;
  auto out = rows_from_unchecked(L, index);
  check_stack(L, expected, "rows_from");
  return out;
}

}  // namespace qlab
