#pragma once
// Lua 5.4 sweep scripts: the one place qlab talks to Lua (STYLE.md practice
// 11). A script gets a `qlab` module; its tables fill the same typed options
// as TOML, through the same validation, with script:line in every message.
#include <qlab/experiment.hpp>
#include <qlab/store.hpp>
#include <qlab/sweep.hpp>

#include <chrono>

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

struct lua_State;

namespace qlab {

struct ScriptSettings {
  RunSettings run;           ///< cache, progress
  bool force = false;        ///< re-run stored points
  bool report_only = false;  ///< `qlab report`: every point must be stored
  std::string reports_root = "reports";
  std::vector<std::string> args;  ///< `key=value` words after `--`
  PointRunner runner;             ///< empty: run_experiment (or isolated_runner)
  /// Run every point in a child `qlab run` process (`qlab sweep --isolate`;
  /// a sweep's `isolate = true` asks for it too).
  bool isolate = false;
  std::string executable;  ///< the qlab binary children run; empty: this process's
  /// `--max-seconds`: once the script has run this long, its Lua code stops
  /// with an error at the line it reached (a qlab call in progress ends
  /// first). 0: no bound.
  double max_seconds = 0;
  /// `qlab sweep --slurm`: points not stored go to this instead of running,
  /// and reports and plots are left for `qlab report` after the jobs end.
  PointDeferrer defer;
};

class Script {
 public:
  Script(const Registry& registry, ResultStore& store, ScriptSettings settings, std::ostream& log);
  ~Script();
  Script(const Script&) = delete;
  Script& operator=(const Script&) = delete;

  /// Runs a script file; throws qlab::Error "file:line: message" when the
  /// script fails (a Lua error, a bad option, a missing stored point).
  void run_file(const std::string& path);
  /// Runs a chunk of Lua named `chunk_name` in messages.
  void run_string(const std::string& code, const std::string& chunk_name);
  lua_State* state() { return L_; }

  // Used by the bindings.
  const Registry& registry() const { return registry_; }
  ResultStore& store() { return store_; }
  const ScriptSettings& settings() const { return settings_; }
  std::ostream& log() { return log_; }
  /// "label: message" of every point that failed while the script ran.
  const std::vector<std::string>& failures() const { return failures_; }
  void note(const std::vector<PointRecord>& points);
  /// Marks that the script read its arguments (qlab.args).
  void args_read() { args_read_ = true; }
  /// The sweep name a point gets when the script names none.
  const std::string& default_sweep() const { return default_sweep_; }
  /// A binding was interrupted by Ctrl-C: the script stops with Interrupted.
  void interrupt(const std::string& message) { interrupted_ = message; }
  /// Whether the script has run past settings().max_seconds.
  bool past_deadline() const;

 private:
  void run_chunk(int load_status);

  const Registry& registry_;
  ResultStore& store_;
  ScriptSettings settings_;
  std::ostream& log_;
  lua_State* L_;
  std::string default_sweep_ = "script";
  std::string chunk_name_;  ///< the file or chunk running, for messages
  std::string interrupted_;
  std::vector<std::string> failures_;
  bool args_read_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace qlab
