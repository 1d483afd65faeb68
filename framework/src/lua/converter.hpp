#pragma once
// Conversions between Lua values and C++ ones, and nothing else: no schema,
// no store, no command line (those are tables.hpp's). Each function states
// its effect on the Lua stack as the Lua manual does, [-popped, +pushed], and
// checks on return that it left the stack so. Every function throws
// qlab::Error and never raises a Lua error, so the bindings in script.cpp can
// call them from C++ frames.
#include <qlab/plugin/options.hpp>
#include <qlab/store.hpp>
#include <qlab/sweep.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

struct lua_State;

namespace qlab {

/// Throws (an internal error) unless the stack's top is `expected`.
void check_stack(lua_State* L, int expected, const char* function);

/// [-0, +1] An option value: boolean, integer, number, string, list of
/// strings, or a list of tables.
void push_value(lua_State* L, const Value& value);

/// [-0, +0] A plain value (boolean, integer, number, string, list of
/// strings, list of tables); `what` names it in errors.
Value value_at(lua_State* L, int index, const std::string& what);

/// [-0, +0] The string at `index`; an error naming `what` otherwise.
std::string string_at(lua_State* L, int index, const std::string& what);

/// [-0, +0] Calls `f(key)` for each string key of the table at `index`, with
/// the value on top of the stack; the stack is restored after each call.
void for_each_field(lua_State* L, int index, const std::string& what,
                    const std::function<void(const std::string&)>& f);

/// [-0, +1] A JSON value as Lua values (objects and arrays as tables).
void push_json(lua_State* L, const nlohmann::json& value);

/// [-0, +0] The value at `index` as JSON; a table with keys 1..n is an array.
nlohmann::json json_at(lua_State* L, int index, int depth = 0);

/// [-0, +1] A point as one row table: its last row (the quantized one), with
/// the fp32 row under `baseline` and `status`/`message` of the point.
void push_point(lua_State* L, const PointRecord& point);

/// [-0, +1] A list of row tables.
void push_rows(lua_State* L, const std::vector<nlohmann::json>& rows);

/// [-0, +0] Rows from a Lua list of row tables; a row's `baseline` becomes a
/// row of its own before it.
std::vector<nlohmann::json> rows_from(lua_State* L, int index);

}  // namespace qlab
