// The Lua binding layer. Lua reports errors by longjmp, which must never
// cross a C++ frame that owns something: every binding runs inside
// `guarded`, which turns a C++ exception into a Lua error only after the
// binding's locals are destroyed, and bindings use no Lua call that can
// raise (rawget, not gettable; type checks by hand, not luaL_check*).
#include "lua/converter.hpp"
#include "lua/source.hpp"
#include "lua/tables.hpp"

#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/registry.hpp>
#include <qlab/report.hpp>
#include <qlab/script.hpp>
#include <qlab/version.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <lua.hpp>

#include <filesystem>
#include <ostream>

namespace qlab {

/// The sweeper the script's settings ask for; `isolate`: each point in a
/// child process, whatever the settings say.
Sweeper sweeper(Script& script, bool isolate = false);

namespace {

Script& self(lua_State* L) { return *static_cast<Script*>(lua_touserdata(L, lua_upvalueindex(1))); }

template <int (*F)(lua_State*)>
int guarded(lua_State* L) {
  {
    std::string message;
    try {
      return F(L);
    } catch (const Interrupted& e) {
      // Lua cannot carry the exception's type through its error: the
      // script remembers it, and rethrows once Lua has unwound.
      self(L).interrupt(e.what());
      message = e.what();
    } catch (const c10::Error& e) {
      message = std::string("LibTorch error: ") + e.what_without_backtrace();
    } catch (const std::exception& e) {
      message = e.what();
    }
    // Messages from option validation already start with script:line.
    const SourceLoc at = caller(L);
    if (message.rfind(at.file + ":", 0) != 0) message = at.str() + ": " + message;
    lua_pushlstring(L, message.data(), message.size());
  }
  return lua_error(L);
}

// The table argument at `index`, or an error naming the function.
void expect_table(lua_State* L, int index, const char* function) {
  if (lua_type(L, index) != LUA_TTABLE)
    throw Error(fmt::format("{} expects a table, found {}", function, luaL_typename(L, index)));
}

// Whether points were handed to a job array: then `what` (a report or a
// plot) waits for `qlab report`, which draws it from the merged results.
bool deferring(Script& s, const std::string& what) {
  if (!s.settings().defer) return false;
  s.log() << fmt::format(
      "{}: not written now; its points run as a job array (write it with `qlab report` "
      "after `qlab results merge`)\n",
      what);
  return true;
}

// Runs points as sweep `name` under the script's settings, noting failures.
std::vector<PointRecord> run_points(Script& s, const std::vector<SweepPoint>& points,
                                    const std::string& name, bool isolate = false) {
  SweepSettings settings;
  settings.name = name;
  settings.force = s.settings().force;
  settings.report_only = s.settings().report_only;
  settings.defer = s.settings().defer;
  auto records = sweeper(s, isolate).run(points, settings);
  s.note(records);
  return records;
}

// Runs one experiment table as a single-point sweep; pushes its row.
int evaluate_with(lua_State* L, const char* function, int need_quantizer) {
  expect_table(L, 1, function);
  Script& s = self(L);
  const SourceLoc at = caller(L);
  std::string sweep = s.default_sweep();
  Experiment ex = experiment_from(L, 1, at, &sweep);
  const bool has_quantizer = ex.quantizer.values.count("name") &&
                             std::get_if<std::string>(&ex.quantizer.values["name"].value) &&
                             std::get<std::string>(ex.quantizer.values["name"].value) != "none";
  if (need_quantizer > 0 && !has_quantizer)
    throw Error(fmt::format("{}: {} needs a quantizer table with a name", at.str(), function));
  if (need_quantizer < 0) ex.quantizer = RawSection{"quantizer", at, {}};
  push_point(L, run_points(s, {SweepPoint{ex, {}}}, sweep).at(0));
  return 1;
}

int l_train(lua_State* L) { return evaluate_with(L, "qlab.train", -1); }
int l_quantize(lua_State* L) { return evaluate_with(L, "qlab.quantize", 1); }
int l_evaluate(lua_State* L) { return evaluate_with(L, "qlab.evaluate", 0); }

int l_sweep(lua_State* L) {
  expect_table(L, 1, "qlab.sweep");
  Script& s = self(L);
  const SourceLoc at = caller(L);
  std::string name = s.default_sweep();
  Experiment base;
  std::vector<GridAxis> axes;
  bool has_where = false, isolate = false;
  for_each_field(L, 1, "qlab.sweep", [&](const std::string& key) {
    if (key == "name")
      name = string_at(L, -1, "qlab.sweep name");
    else if (key == "isolate") {
      if (lua_type(L, -1) != LUA_TBOOLEAN)
        throw Error(
            fmt::format("qlab.sweep isolate: expected a boolean, found {}", luaL_typename(L, -1)));
      isolate = lua_toboolean(L, -1);
    } else if (key == "base")
      base = experiment_from(L, lua_gettop(L), at, nullptr);
    else if (key == "grid")
      axes = grid_from(L, lua_gettop(L));
    else if (key == "where") {
      if (lua_type(L, -1) != LUA_TFUNCTION)
        throw Error(
            fmt::format("qlab.sweep where: expected a function, found {}", luaL_typename(L, -1)));
      has_where = true;
    } else {
      throw Error(fmt::format(
          "qlab.sweep: unknown key '{}' (known: base, grid, isolate, name, where)", key));
    }
  });
  if (base.source.empty()) throw Error("qlab.sweep: 'base' (an experiment table) is required");
  auto points = expand_grid(base, axes, at);
  if (has_where) {
    std::vector<SweepPoint> kept;
    lua_pushstring(L, "where");
    lua_rawget(L, 1);
    const int fn = lua_gettop(L);
    for (auto& p : points)
      if (call_predicate(L, fn, p)) kept.push_back(std::move(p));
    lua_settop(L, fn - 1);
    points = std::move(kept);
  }
  const auto records = run_points(s, points, name, isolate);
  lua_createtable(L, static_cast<int>(records.size()), 0);
  for (std::size_t i = 0; i < records.size(); ++i) {
    push_point(L, records[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int l_mixed_precision(lua_State* L) {
  expect_table(L, 1, "qlab.mixed_precision");
  Script& s = self(L);
  Experiment base;
  const MixedPrecisionSpec spec = mixed_precision_from(L, 1, caller(L), &base);
  RunSettings run = s.settings().run;
  run.progress = false;
  const MixedPrecisionSearch found =
      search_mixed_precision(base, s.registry(), spec, run,
                             s.settings().report_only || s.settings().defer != nullptr, s.log());
  nlohmann::json candidates = nlohmann::json::array(), layers = nlohmann::json::array();
  for (const auto& c : found.candidates)
    candidates.push_back({{"label", c.label},
                          {"config", c.config},
                          {"budget", c.budget},
                          {to_string(spec.budget_kind), c.ratio},
                          {"predicted_loss_increase", c.allocation.sensitivity},
                          {"exact", c.allocation.exact},
                          {"bits", c.allocation.bits}});
  for (const auto& l : found.layers) {
    nlohmann::json by_bits = nlohmann::json::array();
    for (const auto& [bits, v] : l.by_bits)
      by_bits.push_back({{"bits", bits}, {"loss_increase", v}});
    layers.push_back(
        {{"layer", l.layer}, {"weights", l.weights}, {"macs", l.macs}, {"by_bits", by_bits}});
  }
  push_json(L, candidates);
  push_json(L, layers);
  return 2;
}

// qlab.export(experiment, {onnx = FILE, weights = FILE, reference = FILE}):
// in this process, as `qlab export` does; returns its notes.
int l_export(lua_State* L) {
  expect_table(L, 1, "qlab.export");
  expect_table(L, 2, "qlab.export's second argument");
  Script& s = self(L);
  const Experiment ex = experiment_from(L, 1, caller(L), nullptr);
  std::string onnx, weights, reference;
  for_each_field(L, 2, "qlab.export", [&](const std::string& key) {
    std::string* slot = key == "onnx"        ? &onnx
                        : key == "weights"   ? &weights
                        : key == "reference" ? &reference
                                             : nullptr;
    if (!slot)
      throw Error(
          fmt::format("qlab.export: unknown key '{}' (known: onnx, reference, weights)", key));
    *slot = string_at(L, -1, "qlab.export " + key);
  });
  if (onnx.empty() && weights.empty())
    throw Error("qlab.export: give onnx = FILE, weights = FILE, or both");
  if (!reference.empty() && onnx.empty()) throw Error("qlab.export: reference needs onnx");
  std::vector<std::string> notes;
  if (s.settings().report_only || s.settings().defer) {
    s.log() << "qlab.export: nothing written (reports only, or points sent to a job array)\n";
  } else {
    RunSettings run = s.settings().run;
    run.progress = false;
    if (!weights.empty()) notes = export_float_weights(ex, s.registry(), run, weights, s.log());
    if (!onnx.empty())
      for (auto& n : export_onnx(ex, s.registry(), run, onnx, reference, s.log()))
        notes.push_back(std::move(n));
  }
  push_json(L, notes);
  return 1;
}

int l_results(lua_State* L) {
  RowFilter filter;
  if (!lua_isnoneornil(L, 1)) {
    expect_table(L, 1, "qlab.results");
    for_each_field(L, 1, "qlab.results", [&](const std::string& key) {
      std::string* slot = key == "sweep"       ? &filter.sweep
                          : key == "model"     ? &filter.model
                          : key == "quantizer" ? &filter.quantizer
                          : key == "backend"   ? &filter.backend
                          : key == "status"    ? &filter.status
                                               : nullptr;
      if (!slot)
        throw Error(fmt::format(
            "qlab.results: unknown filter '{}' (known: backend, model, quantizer, sweep, status)",
            key));
      *slot = string_at(L, -1, "qlab.results " + key);
    });
  }
  push_rows(L, rows_of(self(L).store().points(filter)));
  return 1;
}

int l_plot(lua_State* L) {
  expect_table(L, 1, "qlab.plot");
  const SourceLoc at = caller(L);
  std::vector<nlohmann::json> rows;
  std::string dir;
  const PlotSpec spec = plot_from(L, 1, at, &rows, &dir);
  if (dir.empty()) throw Error("qlab.plot: 'dir' (the folder to write plots/ into) is required");
  if (deferring(self(L), "plot " + spec.name)) return 0;
  const std::string png = write_plot(spec, rows, dir);
  lua_pushstring(L, png.c_str());
  return 1;
}

int l_report(lua_State* L) {
  expect_table(L, 1, "qlab.report");
  Script& s = self(L);
  ReportSpec spec = report_from(L, 1, caller(L), s.store());
  if (deferring(s, "report " + spec.name)) return 0;
  spec.root = s.settings().reports_root;
  const std::string path = write_report(spec);
  s.log() << "wrote " << path << "\n";
  lua_pushstring(L, path.c_str());
  return 1;
}

int l_plugins(lua_State* L) {
  const auto records = self(L).registry().records();
  lua_createtable(L, static_cast<int>(records.size()), 0);
  for (std::size_t i = 0; i < records.size(); ++i) {
    push_json(L, {{"kind", to_string(records[i].kind)},
                  {"name", records[i].name},
                  {"description", records[i].description},
                  {"file", records[i].file}});
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int l_args(lua_State* L) {
  if (!lua_isnoneornil(L, 1))
    expect_table(L, 1, "qlab.args");
  else
    lua_newtable(L);
  push_args(L, 1, self(L).settings().args);
  self(L).args_read();
  return 1;
}

// A copy of `base` with the keys of `changes` set over it: one level deep,
// so a changed section replaces the whole section, as a sweep's base wants
// when one quantizer's options stand in for another's.
int l_with(lua_State* L) {
  expect_table(L, 1, "qlab.with");
  const bool changes = !lua_isnoneornil(L, 2);
  if (changes && lua_type(L, 2) != LUA_TTABLE)
    throw Error(
        fmt::format("qlab.with: its changes must be a table, found {}", luaL_typename(L, 2)));
  lua_settop(L, 2);
  lua_newtable(L);
  for (int from = 1; from <= (changes ? 2 : 1); ++from) {
    lua_pushnil(L);
    while (lua_next(L, from)) {  // key, value
      lua_pushvalue(L, -2);
      lua_insert(L, -2);  // key, key, value
      lua_settable(L, 3);
    }
  }
  return 1;
}

const luaL_Reg kFunctions[] = {{"train", guarded<l_train>},
                               {"quantize", guarded<l_quantize>},
                               {"evaluate", guarded<l_evaluate>},
                               {"sweep", guarded<l_sweep>},
                               {"results", guarded<l_results>},
                               {"report", guarded<l_report>},
                               {"plot", guarded<l_plot>},
                               {"plugins", guarded<l_plugins>},
                               {"args", guarded<l_args>},
                               {"mixed_precision", guarded<l_mixed_precision>},
                               {"export", guarded<l_export>},
                               {"with", guarded<l_with>},
                               {nullptr, nullptr}};

int message_handler(lua_State* L) {
  // Keep Lua's "file:line: message"; a non-string error object is described.
  if (!lua_isstring(L, 1)) {
    const std::string at = caller(L).str();
    lua_pushfstring(L, "%s: error object is a %s value, not a message", at.c_str(),
                    luaL_typename(L, 1));
  }
  return 1;
}

}  // namespace

Sweeper sweeper(Script& s, bool isolate) {
  PointRunner runner = s.settings().runner;
  if (!runner && (isolate || s.settings().isolate)) {
    const std::string& exe = s.settings().executable;
    runner = isolated_runner(
        exe.empty() ? std::filesystem::read_symlink("/proc/self/exe").string() : exe,
        s.settings().run, s.log());
  } else if (!runner) {
    runner = in_process_runner(s.settings().run, s.log());
  }
  return Sweeper(s.registry(), s.store(), std::move(runner), s.log());
}

namespace {

// Runs every 10,000 Lua instructions while a time bound is set: a script
// stuck in a loop ends with an error at its line instead of running forever.
void deadline_hook(lua_State* L, lua_Debug* ar) {
  const Script* s = *static_cast<Script**>(lua_getextraspace(L));
  if (!s->past_deadline()) return;
  lua_getinfo(L, "Sl", ar);  // the running function: its file and line
  luaL_error(L, "%s:%d: the script ran past --max-seconds %s", source_name(*ar).c_str(),
             ar->currentline, fmt::format("{:g}", s->settings().max_seconds).c_str());
}

}  // namespace

bool Script::past_deadline() const {
  return settings_.max_seconds > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count() >
             settings_.max_seconds;
}

Script::Script(const Registry& registry, ResultStore& store, ScriptSettings settings,
               std::ostream& log)
    : registry_(registry),
      store_(store),
      settings_(std::move(settings)),
      log_(log),
      L_(luaL_newstate()) {
  if (!L_) throw Error("cannot create a Lua state (out of memory)");
  *static_cast<Script**>(lua_getextraspace(L_)) = this;
  if (settings_.max_seconds > 0) lua_sethook(L_, deadline_hook, LUA_MASKCOUNT, 10000);
  luaL_openlibs(L_);
  lua_createtable(L_, 0, static_cast<int>(std::size(kFunctions)));
  lua_pushlightuserdata(L_, this);
  luaL_setfuncs(L_, kFunctions, 1);
  lua_pushstring(L_, version());
  lua_setfield(L_, -2, "version");
  // Both `qlab.x` and `require "qlab"` work.
  lua_pushvalue(L_, -1);
  lua_setglobal(L_, "qlab");
  luaL_getsubtable(L_, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L_, -2);
  lua_setfield(L_, -2, "qlab");
  lua_pop(L_, 1);
}

Script::~Script() { lua_close(L_); }

void Script::note(const std::vector<PointRecord>& points) {
  for (const auto& p : points)
    if (p.status == PointStatus::failed) failures_.push_back(p.label + ": " + p.message);
}

void Script::run_chunk(int load_status) {
  if (load_status == LUA_OK) {
    lua_pushcfunction(L_, message_handler);
    lua_insert(L_, -2);
    const int base = lua_gettop(L_) - 1;
    load_status = lua_pcall(L_, 0, 0, base);
    lua_remove(L_, base);
  }
  if (load_status == LUA_ERRMEM) {
    // Lua unwinds an allocation failure without a traceback: the file is
    // all that can be named.
    lua_pop(L_, 1);
    throw Error(
        fmt::format("{}: the script ran out of memory (Lua: not enough memory)", chunk_name_));
  }
  if (load_status != LUA_OK && !interrupted_.empty()) {
    lua_pop(L_, 1);
    throw Interrupted(interrupted_);
  }
  if (load_status != LUA_OK) {
    std::string message = lua_isstring(L_, -1) ? lua_tostring(L_, -1) : "unknown Lua error";
    lua_pop(L_, 1);
    throw Error(with_full_chunk_name(message, chunk_name_));
  }
}

void Script::run_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(fmt::format("{}: no such script", path));
  default_sweep_ = std::filesystem::path(path).stem().string();
  chunk_name_ = path;
  run_chunk(luaL_loadfile(L_, path.c_str()));
  if (!settings_.args.empty() && !args_read_)
    throw Error(fmt::format("{} takes no arguments (it never calls qlab.args), but was given: {}",
                            path, fmt::join(settings_.args, " ")));
}

void Script::run_string(const std::string& code, const std::string& chunk_name) {
  chunk_name_ = chunk_name;
  run_chunk(luaL_loadbuffer(L_, code.data(), code.size(), ("@" + chunk_name).c_str()));
}

}  // namespace qlab
