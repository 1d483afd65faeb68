// Quantization-aware training: the float baseline is fine-tuned with fake
// quantization, weights per channel on their min/max, activations on
// moving-average min/max, with straight-through gradients. At 8 bits the
// result runs on int8 kernels like `static`; other widths are simulated.
#include <qlab/quant/qat.hpp>

namespace {

class Qat final : public qlab::Quantizer {
 public:
  qlab::QuantizerCaps caps() const override { return {}; }

  qlab::Schema options() const override {
    qlab::Schema s;
    s.boolean("per_channel", true, "one weight scale per output channel")
        .integer("freeze_observers_after", -1,
                 "epochs after which activation ranges stop moving (-1: never)", -1, 1000)
        .integer("freeze_bn_after", -1,
                 "epochs after which batch norm statistics stop updating (-1: never)", -1, 1000);
    return qlab::add_finetune_options(s);
  }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    auto spec = qlab::finetune_spec("qat", o, ctx);
    spec.freeze_observers_after = o.get<std::int64_t>("freeze_observers_after");
    spec.freeze_bn_after = o.get<std::int64_t>("freeze_bn_after");
    const bool per_channel = o.get<bool>("per_channel") && ctx.engine.per_channel_weights;
    return qlab::quantization_aware_training(
        std::move(trained), spec, qlab::qat_fake_quant(per_channel, ctx.engine.reduce_range), ctx);
  }
};

}  // namespace

QLAB_PLUGIN(Qat, "quantizer", "qat",
            "quantization-aware training: fake-quant fine-tuning, int8 end to end at 8 bits")
