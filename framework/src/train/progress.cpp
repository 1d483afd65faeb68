#include <qlab/progress.hpp>

#include <fmt/format.h>
#include <unistd.h>

namespace qlab {

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string label, std::int64_t total, std::FILE* out)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      out_(out),
      interactive_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::update(std::int64_t done, const std::string& status) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  const double eta = done > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
  if (interactive_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth);
    fmt::print(out_, "\r\x1b[2K{} [{}{}] {:3.0f}% {} elapsed {} eta {}", label_,
               std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(kWidth - filled), '.'), 100 * frac, status,
               format_duration(elapsed), format_duration(eta));
    std::fflush(out_);
  } else {
    // Off a terminal (logs, CI): one line per quarter, no control characters.
    const int quarter = static_cast<int>(frac * 4);
    if (quarter > last_plain_quarter_ && quarter < 4) {
      last_plain_quarter_ = quarter;
      fmt::print(out_, "{} {:3.0f}% {} elapsed {} eta {}\n", label_, 100 * frac, status,
                 format_duration(elapsed), format_duration(eta));
    }
  }
}

void Progress::finish(const std::string& status) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (interactive_) fmt::print(out_, "\r\x1b[2K");
  fmt::print(out_, "{} done {} in {:.2f} s\n", label_, status, elapsed);
  std::fflush(out_);
}

}  // namespace qlab
