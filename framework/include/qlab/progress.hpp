#pragma once
// A progress line: redrawn in place on a terminal, plain lines otherwise.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qlab {

/// "1:05" or "2:03:07": elapsed times and ETAs in progress lines.
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(std::string label, std::int64_t total, std::FILE* out = stderr);
  /// Advances to `done` of total; `status` is shown after the bar.
  void update(std::int64_t done, const std::string& status);
  /// Ends the line (or prints the final plain line).
  void finish(const std::string& status);
  bool interactive() const { return interactive_; }

 private:
  std::string label_;
  std::int64_t total_;
  std::FILE* out_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_plain_quarter_ = 0;
};

}  // namespace qlab
