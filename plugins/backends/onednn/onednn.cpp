// int8 on LibTorch's oneDNN engine (x86): per-channel weights; 8-bit
// activations on 8 bits with VNNI, on 7 without (cpu_int8.hpp).
#include <aten_int8.hpp>

namespace {
class OneDnn final : public qlab::int8::AtenInt8Backend {
 public:
  OneDnn() : AtenInt8Backend({"onednn", at::QEngine::ONEDNN}) {}
};
}  // namespace

QLAB_PLUGIN(OneDnn, "backend", "onednn", "int8 on LibTorch's oneDNN quantized engine (x86)")
