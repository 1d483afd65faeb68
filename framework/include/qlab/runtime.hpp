#pragma once
// Process-wide execution settings that every measurement depends on.
#include <string>
#include <vector>

namespace qlab {

/// Sets LibTorch's intra-op threads to `threads` (0: one per core) and pins
/// the BLAS library's own pool to one thread. Why: OpenBLAS starts its own
/// pool of busy-waiting threads; on top of LibTorch's OpenMP pool that
/// oversubscribes the cores and makes fp32 timings slow and noisy. LibTorch
/// already parallelises around each BLAS call, so BLAS needs no pool.
/// It also has the C allocator keep freed memory for reuse (runtime.cpp).
void set_threads(int threads);
int threads();
/// Threads of the BLAS pool after set_threads (-1 when the BLAS has no query).
int blas_threads();
/// The quantized engines this LibTorch has, e.g. {"onednn", "qnnpack"}.
std::vector<std::string> quantized_engines();
std::string host_name();
/// One line: LibTorch version, threads, BLAS threads, quantized engines.
std::string runtime_summary();

}  // namespace qlab
