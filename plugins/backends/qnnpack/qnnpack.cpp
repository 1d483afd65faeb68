// int8 on LibTorch's QNNPACK engine (written for ARM, also runs on x86).
#include <aten_int8.hpp>

namespace {
class Qnnpack final : public qlab::int8::AtenInt8Backend {
 public:
  // QNNPACK runs on its own thread pool: qlab's kernels run without waking OpenMP's.
  Qnnpack() : AtenInt8Backend({"qnnpack", at::QEngine::QNNPACK, /*parallel_code_kernels=*/false}) {}
};
}  // namespace

QLAB_PLUGIN(Qnnpack, "backend", "qnnpack", "int8 on LibTorch's QNNPACK quantized engine")
