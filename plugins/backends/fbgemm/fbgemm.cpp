// int8 on LibTorch's FBGEMM engine (x86). Its kernels add pairs of products
// in 16 bits on CPUs without VNNI, so activations use 7 bits (reduce_range)
// by default, as PyTorch's fbgemm qconfig does (cpu_int8.hpp).
#include <aten_int8.hpp>

namespace {
class Fbgemm final : public qlab::int8::AtenInt8Backend {
 public:
  Fbgemm() : AtenInt8Backend({"fbgemm", at::QEngine::FBGEMM}) {}
};
}  // namespace

QLAB_PLUGIN(Fbgemm, "backend", "fbgemm", "int8 on LibTorch's FBGEMM quantized engine (x86)")
