// Built with OpenMP (framework/CMakeLists.txt): see qlab/parallel.hpp.
#include "qlab/parallel.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>

#if defined(AT_PARALLEL_OPENMP) && AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "LibTorch parallelises with OpenMP: this file must be compiled with it"
#endif

namespace qlab {

void for_ranges(std::int64_t count, std::int64_t grain, bool parallel,
                const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  if (parallel)
    at::parallel_for(0, count, grain, body);
  else
    body(0, count);
}

void for_claimed(std::int64_t count, std::int64_t chunk, bool parallel,
                 const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  if (!parallel) {
    body(0, count);
    return;
  }
  chunk = std::max<std::int64_t>(chunk, 1);
  std::atomic<std::int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](std::int64_t, std::int64_t) {
    for (std::int64_t i = next.fetch_add(chunk); i < count; i = next.fetch_add(chunk))
      body(i, std::min(count, i + chunk));
  });
}

std::vector<std::int64_t> split_by_speed(std::int64_t count, const std::vector<double>& speeds) {
  const auto n = static_cast<std::int64_t>(speeds.size());
  std::vector<std::int64_t> ends(speeds.size(), count);
  // A speed under zero counts as zero, in the total as in each range.
  const double total = std::accumulate(speeds.begin(), speeds.end(), 0.0,
                                       [](double sum, double s) { return sum + std::max(s, 0.0); });
  if (!(total > 0) || !std::isfinite(total)) {  // no speeds to go by: even ranges
    for (std::int64_t i = 0; i < n; ++i) ends[i] = count * (i + 1) / n;
    return ends;
  }
  double before = 0;
  std::int64_t last = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    before += std::max(speeds[i], 0.0);
    const auto end = i + 1 == n ? count : std::llround(static_cast<double>(count) * before / total);
    // At least one item each, where there are enough, and none past count.
    const std::int64_t least = count >= n ? last + 1 : last,
                       most = count >= n ? count - (n - 1 - i) : count;
    ends[i] = last = std::clamp<std::int64_t>(end, least, most);
  }
  return ends;
}

namespace {
// How far one run moves a thread's speed towards what it just measured:
// enough to follow a neighbour that comes and stays for seconds, little
// enough that one run's noise moves an image or none.
constexpr double kFollow = 0.25;
// No thread is judged slower than a quarter of the mean, nor faster than
// four times it: a thread left a few items is timed on them alone.
constexpr double kSlowest = 0.25, kFastest = 4.0;
}  // namespace

void SpeedBalanced::run(std::int64_t count, bool parallel,
                        const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  const int threads = parallel ? at::get_num_threads() : 1;
  if (threads <= 1) {
    body(0, count);
    return;
  }
  std::vector<double> speeds;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int>(speeds_.size()) != threads) speeds_.assign(threads, 1.0);
    speeds = speeds_;
  }
  const std::vector<std::int64_t> ends = split_by_speed(count, speeds);
  std::vector<double> seconds(speeds.size(), 0.0);
  // One index a thread: at::parallel_for's OpenMP build gives thread t
  // index t, so that a range's time is its thread's.
  at::parallel_for(0, threads, 1, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t t = first; t < last; ++t) {
      const std::int64_t begin = t == 0 ? 0 : ends[t - 1], end = ends[t];
      if (begin == end) continue;
      const auto start = std::chrono::steady_clock::now();
      body(begin, end);
      seconds[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  });
  // Items a second per thread, relative to their mean.
  std::vector<double> rates(speeds.size(), 0.0);
  for (std::size_t t = 0; t < rates.size(); ++t) {
    const std::int64_t items = ends[t] - (t == 0 ? 0 : ends[t - 1]);
    if (items == 0 || !(seconds[t] > 0)) return;  // a thread not timed: keep the old speeds
    rates[t] = static_cast<double>(items) / seconds[t];
  }
  const double mean = std::accumulate(rates.begin(), rates.end(), 0.0) / rates.size();
  std::lock_guard<std::mutex> lock(mutex_);
  if (speeds_.size() != rates.size()) return;
  for (std::size_t t = 0; t < rates.size(); ++t)
    speeds_[t] =
        std::clamp((1 - kFollow) * speeds_[t] + kFollow * rates[t] / mean, kSlowest, kFastest);
}

std::vector<double> SpeedBalanced::speeds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return speeds_;
}

}  // namespace qlab
