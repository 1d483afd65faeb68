#include <qlab/runtime.hpp>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <thread>

namespace qlab {
namespace {

// The BLAS is whatever libblas.so.3 resolves to (OpenBLAS on a set-up
// machine); looked up at run time so qlab builds against any BLAS.
using SetThreads = void (*)(int);
using GetThreads = int (*)();

template <class Fn>
Fn blas_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void set_threads(int n) {
  // glibc returns every freed block over its mmap threshold to the kernel
  // (and trims the heap top), so each batch's large temporaries (im2col
  // columns, conv outputs) came back as fresh pages, faulted in and zeroed
  // again: measured here, MNIST CNN's fp32 batch took 103-112 ms that way
  // and 15 ms with freed memory kept for reuse, as ONNX Runtime's arena does.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  if (auto set = blas_symbol<SetThreads>("openblas_set_num_threads")) set(1);
}

int threads() { return at::get_num_threads(); }

int blas_threads() {
  if (auto get = blas_symbol<GetThreads>("openblas_get_num_threads")) return get();
  return -1;
}

std::string host_name() {
  char buf[256] = {};
  return gethostname(buf, sizeof buf - 1) == 0 ? buf : "unknown";
}

std::vector<std::string> quantized_engines() {
  std::vector<std::string> engines;
  for (auto e : at::globalContext().supportedQEngines())
    if (e != at::QEngine::NoQEngine) engines.push_back(c10::toString(e));
  return engines;
}

std::string runtime_summary() {
  const auto engines = quantized_engines();
  const int blas = blas_threads();
  return fmt::format(
      "LibTorch {}, {} threads, BLAS {}, quantized engines: {}", TORCH_VERSION, threads(),
      blas < 0 ? std::string("(not OpenBLAS)") : fmt::format("OpenBLAS {} thread(s)", blas),
      fmt::join(engines, ", "));
}

}  // namespace qlab
