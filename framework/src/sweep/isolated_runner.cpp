// A sweep point in its own `qlab run` process: the parent keeps the results
// store, the child may crash. The point travels as a TOML file and its rows
// come back as the JSON `qlab run --json` writes.
#include <qlab/error.hpp>
#include <qlab/sweep.hpp>

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace qlab {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system's temporary directory, removed with it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "qlab-point-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw Error(fmt::format("cannot create a temporary folder: {}", std::strerror(errno)));
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

// The child's own message: its last "qlab: error: " line.
std::string child_error(const std::string& stderr_tail) {
  const std::string tag = "qlab: error: ";
  const auto at = stderr_tail.rfind(tag);
  if (at == std::string::npos) return "";
  const auto end = stderr_tail.find('\n', at);
  return stderr_tail.substr(at + tag.size(), end == std::string::npos ? std::string::npos : end - at - tag.size());
}

}  // namespace

PointRunner isolated_runner(std::string qlab, RunSettings settings, std::ostream& log) {
  return [qlab = std::move(qlab), settings = std::move(settings), &log](const Experiment& ex) {
    TempDir dir;
    const std::string toml = (dir.path() / "point.toml").string();
    const std::string json = (dir.path() / "rows.json").string();
    std::ofstream(toml) << to_toml(ex);
    std::vector<std::string> args{qlab, "run", "--json", json, "--cache", settings.cache_dir};
    if (!settings.use_cache) args.push_back("--no-cache");
    if (!settings.progress) args.push_back("--quiet");
    args.push_back(toml);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int err[2];
    if (pipe(err) != 0) throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, err[0]);
    posix_spawn_file_actions_addclose(&actions, err[1]);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, qlab.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(err[1]);
    if (spawned != 0) {
      close(err[0]);
      throw Error(fmt::format("cannot start {}: {}", qlab, std::strerror(spawned)));
    }
    // Forward the child's progress and messages; keep the tail for its error.
    std::string tail;
    char buf[4096];
    for (ssize_t n; (n = read(err[0], buf, sizeof buf)) != 0;) {
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      log.write(buf, n);
      log.flush();
      tail.append(buf, static_cast<std::size_t>(n));
      if (tail.size() > 16384) tail.erase(0, tail.size() - 8192);
    }
    close(err[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status)) {
      const int sig = WTERMSIG(status);
      throw Error(fmt::format("the point's process was killed by signal {} ({}){}", sig, strsignal(sig),
                              sig == SIGKILL ? "; the kernel's out-of-memory killer sends this" : ""));
    }
    if (WEXITSTATUS(status) == 130) {
      const std::string tag = "qlab: interrupted";
      const auto at = tail.rfind(tag);
      throw Interrupted(at == std::string::npos ? "interrupted" : tail.substr(at + 6, tail.find('\n', at) - at - 6));
    }
    if (WEXITSTATUS(status) != 0) {
      const std::string message = child_error(tail);
      throw Error(message.empty() ? fmt::format("the point's process exited with status {}", WEXITSTATUS(status))
                                  : message);
    }
    std::ifstream in(json);
    const auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object() || !doc.contains("rows"))
      throw Error(fmt::format("the point's process wrote no readable rows to {}", json));
    return doc["rows"].get<std::vector<nlohmann::json>>();
  };
}

}  // namespace qlab
