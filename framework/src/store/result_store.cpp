#include <qlab/error.hpp>
#include <qlab/store.hpp>

#include <fmt/format.h>
#include <sqlite3.h>

#include <ctime>
#include <filesystem>

namespace qlab {
namespace {

constexpr const char* kSchemaVersion = "qlab-results-1";

// One prepared statement; finalized on every path out.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.c_str(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  /// True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
  }
  std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw Error(fmt::format("{}: results store: {} failed: {}", path_, what, sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& path, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string m = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    throw Error(fmt::format("{}: results store: {}", path, m));
  }
}

PointStatus parse_status(const std::string& s, const std::string& path) {
  if (s == "ok") return PointStatus::ok;
  if (s == "failed") return PointStatus::failed;
  if (s == "skipped") return PointStatus::skipped;
  throw Error(fmt::format("{}: results store holds an unknown status '{}'", path, s));
}

nlohmann::json parse_json(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: results store holds corrupt JSON: {}", path, e.what()));
  }
}

constexpr const char* kSelect =
    "SELECT hash, label, config, status, message, rows, qlab, torch, host, started, ended, "
    "(SELECT group_concat(sweep, ',') FROM sweeps s WHERE s.hash = p.hash) FROM points p ";

PointRecord read_point(const Statement& st, const std::string& path) {
  PointRecord p;
  p.hash = st.text(0);
  p.label = st.text(1);
  p.config = parse_json(st.text(2), path);
  p.status = parse_status(st.text(3), path);
  p.message = st.text(4);
  for (auto& row : parse_json(st.text(5), path)) p.rows.push_back(std::move(row));
  p.qlab_version = st.text(6);
  p.torch_version = st.text(7);
  p.host = st.text(8);
  p.started = st.text(9);
  p.ended = st.text(10);
  p.sweep = st.text(11);
  return p;
}

}  // namespace

const char* to_string(PointStatus status) {
  switch (status) {
    case PointStatus::ok:
      return "ok";
    case PointStatus::failed:
      return "failed";
    case PointStatus::skipped:
      return "skipped";
  }
  return "?";
}

nlohmann::json to_json(const PointRecord& p) {
  return {{"hash", p.hash},
          {"sweep", p.sweep},
          {"label", p.label},
          {"config", p.config},
          {"status", to_string(p.status)},
          {"message", p.message},
          {"rows", p.rows},
          {"qlab", p.qlab_version},
          {"torch", p.torch_version},
          {"host", p.host},
          {"started", p.started},
          {"ended", p.ended}};
}

PointRecord point_from_json(const nlohmann::json& doc, const std::string& source) {
  try {
    PointRecord p;
    p.hash = doc.at("hash").get<std::string>();
    p.sweep = doc.at("sweep").get<std::string>();
    p.label = doc.at("label").get<std::string>();
    p.config = doc.at("config");
    const auto status = doc.at("status").get<std::string>();
    if (status != "ok" && status != "failed" && status != "skipped")
      throw Error(fmt::format("{}: not a qlab point record: unknown status '{}'", source, status));
    p.status = parse_status(status, source);
    p.message = doc.at("message").get<std::string>();
    p.rows = doc.at("rows").get<std::vector<nlohmann::json>>();
    p.qlab_version = doc.at("qlab").get<std::string>();
    p.torch_version = doc.at("torch").get<std::string>();
    p.host = doc.at("host").get<std::string>();
    p.started = doc.at("started").get<std::string>();
    p.ended = doc.at("ended").get<std::string>();
    if (p.hash.empty() || !p.config.is_object())
      throw Error(fmt::format("{}: not a qlab point record: no hash or no config", source));
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a qlab point record: {}", source, e.what()));
  }
}

std::string section_name(const nlohmann::json& config, const char* section) {
  return config.contains(section) ? config[section].value("name", "") : "";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ResultStore::ResultStore(const std::string& path) : path_(path) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error(fmt::format("{}: cannot open the results store: {}", path, m));
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    // WAL: a commit is one append, so a killed writer never leaves a torn
    // point behind; readers (`qlab results`) do not block a running sweep.
    exec(db_, path_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    bool has_tables = false, has_meta = false;
    {
      Statement st(db_, path_, "SELECT name FROM sqlite_master WHERE type='table'");
      while (st.step()) {
        has_tables = true;
        has_meta |= st.text(0) == "meta";
      }
    }
    if (has_tables && !has_meta)
      throw Error(fmt::format("{}: an SQLite database, but not a qlab results store", path_));
    exec(db_, path_,
         "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
         "CREATE TABLE IF NOT EXISTS points(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
         " hash TEXT UNIQUE NOT NULL, label TEXT, config TEXT NOT NULL, status TEXT NOT NULL,"
         " message TEXT, rows TEXT NOT NULL, qlab TEXT, torch TEXT, host TEXT, started TEXT,"
         " ended TEXT);"
         "CREATE TABLE IF NOT EXISTS sweeps(sweep TEXT NOT NULL, hash TEXT NOT NULL,"
         " PRIMARY KEY(sweep, hash));"
         "INSERT OR IGNORE INTO meta VALUES('schema', 'qlab-results-1');");
    Statement st(db_, path_, "SELECT value FROM meta WHERE key='schema'");
    if (!st.step() || st.text(0) != kSchemaVersion)
      throw Error(fmt::format("{}: results store of another version ('{}', expected '{}')", path_,
                              st.text(0), kSchemaVersion));
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

ResultStore::~ResultStore() { sqlite3_close(db_); }

std::optional<PointRecord> ResultStore::find(const std::string& hash) const {
  Statement st(db_, path_, (std::string(kSelect) + "WHERE hash = ?1").c_str());
  st.bind(1, hash);
  if (!st.step()) return std::nullopt;
  return read_point(st, path_);
}

void ResultStore::save(const PointRecord& p) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : p.rows) rows.push_back(r);
  exec(db_, path_, "BEGIN IMMEDIATE");
  try {
    Statement st(db_, path_,
                 "INSERT INTO points(hash, label, config, status, message, rows, qlab, torch, host,"
                 " started, ended) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                 " ON CONFLICT(hash) DO UPDATE SET label=?2, config=?3, status=?4, message=?5,"
                 " rows=?6, qlab=?7, torch=?8, host=?9, started=?10, ended=?11");
    st.bind(1, p.hash).bind(2, p.label).bind(3, p.config.dump()).bind(4, to_string(p.status));
    st.bind(5, p.message).bind(6, rows.dump()).bind(7, p.qlab_version).bind(8, p.torch_version);
    st.bind(9, p.host).bind(10, p.started).bind(11, p.ended);
    st.step();
    if (!p.sweep.empty()) add_to_sweep(p.sweep, p.hash);
    exec(db_, path_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void ResultStore::add_to_sweep(const std::string& sweep, const std::string& hash) {
  Statement st(db_, path_, "INSERT OR IGNORE INTO sweeps VALUES(?1, ?2)");
  st.bind(1, sweep).bind(2, hash);
  st.step();
}

std::vector<PointRecord> ResultStore::points(const RowFilter& f) const {
  std::string sql = kSelect;
  if (!f.sweep.empty()) sql += "WHERE hash IN (SELECT hash FROM sweeps WHERE sweep = ?1) ";
  sql += "ORDER BY seq";
  Statement st(db_, path_, sql.c_str());
  if (!f.sweep.empty()) st.bind(1, f.sweep);
  std::vector<PointRecord> out;
  while (st.step()) {
    PointRecord p = read_point(st, path_);
    auto keep = [](const std::string& want, const std::string& have) {
      return want.empty() || want == have;
    };
    if (keep(f.model, section_name(p.config, "model")) &&
        keep(f.quantizer, section_name(p.config, "quantizer")) &&
        keep(f.backend, section_name(p.config, "backend")) && keep(f.status, to_string(p.status)))
      out.push_back(std::move(p));
  }
  return out;
}

}  // namespace qlab
