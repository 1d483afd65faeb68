#pragma once
// Loops split over LibTorch's intra-op threads, for code outside LibTorch.
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace qlab {

/// Runs body(begin, end) over ranges covering [0, count), of at least
/// `grain` items each, on LibTorch's intra-op threads when `parallel` (and
/// in the calling thread, in one range, when not).
///
/// Why not at::parallel_for directly: in LibTorch's OpenMP builds (Debian's
/// and PyTorch's wheels) it is an inline `#pragma omp parallel`, so a file
/// compiled without -fopenmp runs it on one thread without a word. This
/// one is compiled with OpenMP, once.
void for_ranges(std::int64_t count, std::int64_t grain, bool parallel,
                const std::function<void(std::int64_t, std::int64_t)>& body);

/// Runs body(begin, end) over [0, count) in chunks of `chunk` items that
/// LibTorch's intra-op threads claim in turn, so that a thread slowed by a
/// neighbour on its core leaves its share to the others instead of making
/// them wait; in the calling thread, in one range, when not `parallel`.
/// For loops of many even items: each claim costs an atomic add.
void for_claimed(std::int64_t count, std::int64_t chunk, bool parallel,
                 const std::function<void(std::int64_t, std::int64_t)>& body);

/// The ends of `speeds.size()` consecutive ranges over [0, count), each
/// sized in proportion to its speed (rounded; at least one item each where
/// count allows).
std::vector<std::int64_t> split_by_speed(std::int64_t count, const std::vector<double>& speeds);

/// Runs a loop of even items (a batch's images) in one range per LibTorch
/// intra-op thread, each sized by how fast that thread ran its last ones
/// (split_by_speed), so that a thread slowed by a neighbour on its core (a
/// busy sibling hyperthread, on a shared host) gets fewer items instead of
/// making the others wait for it at the end. Nothing is paid per item, as
/// claiming chunks (for_claimed) pays the body's set-up again for each.
/// Even ranges until every thread has been timed. One object per loop, as
/// each loop's items cost alike; safe to run from several threads at once.
class SpeedBalanced {
 public:
  /// body(begin, end) over ranges covering [0, count); in the calling
  /// thread, in one range, when not `parallel`.
  void run(std::int64_t count, bool parallel,
           const std::function<void(std::int64_t, std::int64_t)>& body);
  /// Each thread's speed, relative to their mean, as run() splits by now.
  std::vector<double> speeds() const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> speeds_;
};

}  // namespace qlab
