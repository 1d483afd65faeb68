#pragma once
// The tables qlab's Lua functions take, checked against their schemas:
// experiments, sweep grids and predicates, plots, reports (which may read the
// results store) and script arguments (parsed from command-line words).
#include <qlab/mixed_precision_search.hpp>
#include <qlab/report.hpp>
#include <qlab/script.hpp>
#include <qlab/sweep.hpp>

#include <string>
#include <vector>

struct lua_State;

namespace qlab {

/// [-0, +0] An experiment table {model = {...}, dataset = {...}, ...}. When
/// `sweep` is given, a string key `sweep` names the sweep the point is
/// stored under.
Experiment experiment_from(lua_State* L, int index, const SourceLoc& at, std::string* sweep);

/// [-0, +0] grid = { ["quantizer.weight_bits"] = {2, 4, 8}, ... }, keys sorted.
std::vector<GridAxis> grid_from(lua_State* L, int index);

/// [-0, +0] Calls the Lua function at `fn` with a point's assignment as a
/// table (both p["quantizer.weight_bits"] and p.quantizer.weight_bits).
bool call_predicate(lua_State* L, int fn, const SweepPoint& point);

/// [-0, +0] qlab.plot's table; `rows` and `dir` come out separately.
PlotSpec plot_from(lua_State* L, int index, const SourceLoc& at, std::vector<nlohmann::json>* rows,
                   std::string* dir);

/// [-0, +0] qlab.report's table: rows given, or read from the store by sweep name.
ReportSpec report_from(lua_State* L, int index, const SourceLoc& at, ResultStore& store);

/// [-0, +0] qlab.mixed_precision's table; its base experiment comes out in `base`.
MixedPrecisionSpec mixed_precision_from(lua_State* L, int index, const SourceLoc& at,
                                        Experiment* base);

/// [-0, +1] qlab.args(defaults): `defaults` (table at `index`) with
/// `key=value` words applied, each parsed as its default's type.
void push_args(lua_State* L, int index, const std::vector<std::string>& words);

}  // namespace qlab
