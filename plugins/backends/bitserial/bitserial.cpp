// bitserial: 1- and 2-bit conv2d and linear layers on bit kernels (AND +
// popcount over packed bit planes, or, for W2A2 convolutions on AVX2, one
// multiply-add for four products over packed fields; bit_kernels.hpp), and
// linear layers of wider weights on one-bit inputs (a binary network's
// 8-bit last layer) on selected sums (selected_sums.hpp); every other layer
// (a real-valued first layer, any layer on wider inputs) on oneDNN's int8
// kernels, as the int8 backends run them.
#include "bit_layers.hpp"

#include <aten_int8.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>

namespace {

using qlab::bits::Isa;

class Bitserial final : public qlab::int8::AtenInt8Backend {
 public:
  Bitserial() : Bitserial(std::make_shared<Isa>(Isa::portable)) {}

  qlab::Schema options() const override {
    auto s = AtenInt8Backend::options();
    s.string("isa", "auto",
             "instructions of the bit kernels: auto (the best this CPU has), avx512 (with "
             "VPOPCNTQ), avx2, portable",
             {"auto", "avx512", "avx2", "portable"});
    return s;
  }

  void configure(const qlab::Options& opts) override {
    AtenInt8Backend::configure(opts);
    const auto isa = opts.get<std::string>("isa");
    if (isa == "auto") {
      try {
        *isa_ = qlab::bits::best_isa();
      } catch (const std::exception& e) {
        throw qlab::Error(fmt::format("[backend] isa = \"auto\": {}", e.what()));
      }
      return;
    }
    for (Isa i : {Isa::portable, Isa::avx2, Isa::avx512})
      if (isa == qlab::bits::to_string(i)) {
        if (!qlab::bits::cpu_has(i))
          throw qlab::Error(
              fmt::format("[backend] isa = \"{}\": this CPU cannot run it; use \"auto\"", isa));
        *isa_ = i;
      }
  }

 private:
  explicit Bitserial(std::shared_ptr<Isa> isa)
      : AtenInt8Backend({"bitserial", at::QEngine::ONEDNN, true,
                         [isa](const qlab::int8::LayerOffer& o) {
                           return qlab::bits::bit_layer_for(o, *isa);
                         }}),
        isa_(std::move(isa)) {
    try {
      *isa_ = qlab::bits::best_isa();
    } catch (const std::exception&) {
      // A bad QLAB_BIT_ISA is reported by configure(); until then, portable.
    }
  }

  std::shared_ptr<Isa> isa_;
};

}  // namespace

QLAB_PLUGIN(
    Bitserial, "backend", "bitserial",
    "1- and 2-bit conv2d/linear on bit kernels (AND + popcount; W2A2 convs on packed fields), "
    "linear layers on 1-bit inputs on selected sums, the rest on oneDNN int8")
