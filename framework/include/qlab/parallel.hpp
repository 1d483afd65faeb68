#pragma once
// Loops split over LibTorch's intra-op threads, for code outside LibTorch.
#include <cstdint>
#include <functional>

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

}  // namespace qlab
