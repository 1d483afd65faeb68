#pragma once
// The results store: every sweep point and its rows, in SQLite.
//
// A point is written in one transaction when it ends, so a process killed at
// any moment (SIGKILL included) leaves every finished point intact and the
// running one absent; re-running the sweep then does only what is missing.
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace qlab {

/// ok: measured; failed: threw, with its message; skipped: could not run on
/// this machine (e.g. its backend is unavailable), with the reason.
enum class PointStatus { ok, failed, skipped };
const char* to_string(PointStatus status);

struct PointRecord {
  std::string hash;       ///< of the resolved config
  std::string sweep;      ///< the sweep that ran it
  std::string label;      ///< e.g. "quantizer.weight_bits=4"
  nlohmann::json config;  ///< resolved options of every section
  PointStatus status = PointStatus::ok;
  std::string message;               ///< why it failed or was skipped
  std::vector<nlohmann::json> rows;  ///< result rows (to_json), baseline first
  std::string qlab_version, torch_version, host;
  std::string started, ended;  ///< ISO 8601, UTC
};

/// A point as one JSON object (every field above), and back; from_json
/// throws qlab::Error naming `source` on a missing or mistyped field.
nlohmann::json to_json(const PointRecord& point);
PointRecord point_from_json(const nlohmann::json& doc, const std::string& source);

struct RowFilter {
  std::string sweep, model, quantizer, backend, status;  ///< empty: any
};

class ResultStore {
 public:
  /// Opens or creates the database; creates its folder. Throws qlab::Error
  /// naming the file when it is not a qlab store or cannot be written.
  explicit ResultStore(const std::string& path);
  ~ResultStore();
  ResultStore(const ResultStore&) = delete;
  ResultStore& operator=(const ResultStore&) = delete;

  const std::string& path() const { return path_; }
  /// The point with this hash, if stored (in any status).
  std::optional<PointRecord> find(const std::string& hash) const;
  /// Stores a finished point, replacing an earlier record of the same hash,
  /// and adds it to its sweep.
  void save(const PointRecord& point);
  /// Adds an already stored point to a sweep (a point shared by two sweeps).
  void add_to_sweep(const std::string& sweep, const std::string& hash);
  /// Points in the order they were first stored.
  std::vector<PointRecord> points(const RowFilter& filter = {}) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

/// The plugin name a resolved config gives a section ("" when none).
std::string section_name(const nlohmann::json& config, const char* section);

/// Current UTC time as ISO 8601 ("2026-11-22T10:00:00Z").
std::string utc_now();

}  // namespace qlab
