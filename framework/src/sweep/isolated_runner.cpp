// A sweep point in its own `qlab run` process: the parent keeps the results
// store, the child may crash. The point travels as a TOML file and its rows
// come back as the JSON `qlab run --json` writes.
#include "sweep/child_process.hpp"

#include <qlab/error.hpp>
#include <qlab/sweep.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include <unistd.h>
#include <csignal>

namespace qlab {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system's temporary directory, removed with it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "qlab-point-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      throw Error(fmt::format("cannot create a temporary folder: {}", std::strerror(errno)));
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// What follows `tag` on the child's last line that starts with it ("" if
// none): its own error message, or where it was interrupted.
std::string child_line(const std::string& stderr_tail, const std::string& tag) {
  const auto at = stderr_tail.rfind(tag);
  if (at == std::string::npos) return "";
  const auto end = stderr_tail.find('\n', at);
  return stderr_tail.substr(at + tag.size(),
                            end == std::string::npos ? std::string::npos : end - at - tag.size());
}

}  // namespace

PointRunner isolated_runner(std::string qlab, RunSettings settings, std::ostream& log) {
  return [qlab = std::move(qlab), settings = std::move(settings), &log](const Experiment& ex,
                                                                        const ExperimentPlan&) {
    TempDir dir;
    const std::string toml = (dir.path() / "point.toml").string();
    const std::string json = (dir.path() / "rows.json").string();
    std::ofstream(toml) << to_toml(ex);
    std::vector<std::string> args{qlab, "run", "--json", json, "--cache", settings.cache_dir};
    if (!settings.use_cache) args.push_back("--no-cache");
    if (!settings.progress) args.push_back("--quiet");
    args.push_back(toml);
    // Forward the child's progress and messages; keep the tail for its error.
    const auto start = std::chrono::steady_clock::now();
    std::string tail;
    const ChildExit exit =
        run_child(args, /*discard_stdout=*/true, [&](const char* data, std::size_t size) {
          log.write(data, static_cast<std::streamsize>(size));
          log.flush();
          tail.append(data, size);
          if (tail.size() > 16384) tail.erase(0, tail.size() - 8192);
        });
    if (exit.spawn_error != 0)
      throw Error(fmt::format("cannot start {}: {}", qlab, std::strerror(exit.spawn_error)));
    if (exit.signal != 0) {
      const int sig = exit.signal;
      throw Error(
          fmt::format("the point's process was killed by signal {} ({}){}", sig, strsignal(sig),
                      sig == SIGKILL ? "; the kernel's out-of-memory killer sends this" : ""));
    }
    if (exit.code == 130) throw Interrupted("interrupted" + child_line(tail, "qlab: interrupted"));
    if (exit.code != 0) {
      const std::string message = child_line(tail, "qlab: error: ");
      throw Error(message.empty()
                      ? fmt::format("the point's process exited with status {}", exit.code)
                      : message);
    }
    // What isolation costs: the child loads the data and the baseline and
    // measures fp32 itself, where an in-process sweep shares them.
    log << fmt::format(
        "isolated point: {:.1f} s in its own process, which loaded its data and baseline and "
        "measured fp32 anew (an in-process sweep shares them)\n",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::ifstream in(json);
    const auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object() || !doc.contains("rows"))
      throw Error(fmt::format("the point's process wrote no readable rows to {}", json));
    return doc["rows"].get<std::vector<nlohmann::json>>();
  };
}

}  // namespace qlab
