// Dynamic post-training quantization: int8 weights, activations quantized
// per batch at run time. LibTorch has dynamic int8 kernels for linear layers
// only, so conv layers stay float, and every result lists them.
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/ptq.hpp>

namespace {

class Dynamic final : public qlab::Quantizer {
 public:
  qlab::QuantizerCaps caps() const override {
    qlab::QuantizerCaps c;
    c.rules.op_types = {qlab::Op::linear};
    c.rules.quant_types = {"weight", "input"};
    c.rules.op_types_reason = "dynamic quantization has int8 kernels for linear layers only";
    c.activation_help = "bits of the per-batch activation quantization (1: two levels)";
    return c;
  }

  qlab::Schema options() const override {
    qlab::Schema s;
    s.boolean("per_channel", true, "one weight scale per output channel");
    return s;
  }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    return qlab::post_training_quantize(
        std::move(trained), qlab::ptq_spec(qlab::Scheme::dynamic, o, ctx), *ctx.calibration);
  }
};

}  // namespace

QLAB_PLUGIN(Dynamic, "quantizer", "dynamic",
            "post-training dynamic: int8 linear weights, activations quantized per batch")
