// int8 on LibTorch's x86 quantized engine, PyTorch 2.x's default on x86:
// it runs each op on FBGEMM or oneDNN, whichever is faster there, so
// 8-bit activations use 7 bits by default as on FBGEMM (cpu_int8.hpp).
// LibTorch 1.13 names the engine too, but only builds with FBGEMM have it.
#include <aten_int8.hpp>

namespace {
class X86 final : public qlab::int8::AtenInt8Backend {
 public:
  X86() : AtenInt8Backend({"x86", at::QEngine::X86}) {}
};
}  // namespace

QLAB_PLUGIN(X86, "backend", "x86",
            "int8 on LibTorch's x86 quantized engine (FBGEMM or oneDNN per op)")
