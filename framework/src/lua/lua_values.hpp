#pragma once
// Conversions between Lua values and qlab's (options, experiments, rows).
// Every function here throws qlab::Error and never raises a Lua error, so the
// bindings in script.cpp can call them from C++ frames.
#include <qlab/report.hpp>
#include <qlab/script.hpp>
#include <qlab/sweep.hpp>

#include <functional>
#include <string>
#include <vector>

struct lua_State;
struct lua_Debug;

namespace qlab {

/// The file a function was loaded from, in full: Lua's `short_src` cuts
/// names longer than 59 characters to "...tail".
std::string source_name(const lua_Debug& ar);

/// Lua's own messages ("...tail:3: attempt to index") name the chunk the
/// short way; this puts the full `chunk` back.
std::string with_full_chunk_name(const std::string& message, const std::string& chunk);

/// The script line that called the running binding.
SourceLoc caller(lua_State* L);

/// Calls `f(key)` for each string key of the table at `index`, with the
/// value on top of the stack; the stack is restored after each call.
void for_each_field(lua_State* L, int index, const std::string& what,
                    const std::function<void(const std::string&)>& f);

std::string string_at(lua_State* L, int index, const std::string& what);

/// A plain value (boolean, integer, number, string, list of strings).
Value value_at(lua_State* L, int index, const std::string& what);

/// An experiment table {model = {...}, dataset = {...}, ...}. When `sweep`
/// is given, a string key `sweep` names the sweep the point is stored under.
Experiment experiment_from(lua_State* L, int index, const SourceLoc& at, std::string* sweep);

/// grid = { ["quantizer.weight_bits"] = {2, 4, 8}, ... }, keys sorted.
std::vector<GridAxis> grid_from(lua_State* L, int index);

/// Calls the Lua function at `fn` with a point's assignment as a table
/// (both p["quantizer.weight_bits"] and p.quantizer.weight_bits).
bool call_predicate(lua_State* L, int fn, const SweepPoint& point);

void push_json(lua_State* L, const nlohmann::json& value);
nlohmann::json json_at(lua_State* L, int index, int depth = 0);

/// A point as one row table: its last row (the quantized one), with the
/// fp32 row under `baseline` and `status`/`message` of the point.
void push_point(lua_State* L, const PointRecord& point);
void push_rows(lua_State* L, const std::vector<nlohmann::json>& rows);

/// Rows from a Lua list of row tables; a row's `baseline` becomes a row of
/// its own before it.
std::vector<nlohmann::json> rows_from(lua_State* L, int index);

/// qlab.plot's table; `rows` and `dir` come out separately.
PlotSpec plot_from(lua_State* L, int index, const SourceLoc& at, std::vector<nlohmann::json>* rows,
                   std::string* dir);
/// qlab.report's table: rows given, or read from the store by sweep name.
ReportSpec report_from(lua_State* L, int index, const SourceLoc& at, ResultStore& store);

/// qlab.args(defaults): `defaults` (table at `index`) with `key=value` words
/// applied, each parsed as its default's type. Pushes the result.
void push_args(lua_State* L, int index, const std::vector<std::string>& words);

/// The sweeper a script's points run through.
/// The sweeper the script's settings ask for; `isolate`: each point in a
/// child process, whatever the settings say.
Sweeper sweeper(Script& script, bool isolate = false);

}  // namespace qlab
