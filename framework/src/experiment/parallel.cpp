// Built with OpenMP (framework/CMakeLists.txt): see qlab/parallel.hpp.
#include "qlab/parallel.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

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

}  // namespace qlab
