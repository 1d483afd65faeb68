// Built with OpenMP (framework/CMakeLists.txt): see qlab/parallel.hpp.
#include "qlab/parallel.hpp"

#include <ATen/Parallel.h>

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

}  // namespace qlab
