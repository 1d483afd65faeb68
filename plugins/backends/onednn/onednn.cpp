// int8 on LibTorch's oneDNN engine (x86): per-channel weights, full-range
// 8-bit activations.
#include <aten_int8.hpp>

namespace {
class OneDnn final : public qlab::int8::AtenInt8Backend {
 public:
  OneDnn() : AtenInt8Backend({"onednn", at::QEngine::ONEDNN, {/*reduce_range=*/false, /*per_channel=*/true}}) {}
};
}  // namespace

QLAB_PLUGIN(OneDnn, "backend", "onednn", "int8 on LibTorch's oneDNN quantized engine (x86)")
