// Dynamic post-training quantization: int8 weights, activations quantized
// per batch at run time. LibTorch has dynamic int8 kernels for linear layers
// only, so conv layers stay float, and every result lists them.
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/ptq.hpp>

namespace {

class Dynamic final : public qlab::Quantizer {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("weight_bits", 8, "bits of weights (1: binary)", 1, 16)
        .integer("activation_bits", 8,
                 "bits of the per-batch activation quantization (1: two levels)", 1, 16)
        .boolean("per_channel", true, "one weight scale per output channel")
        .table_list("config",
                    "NNI-style list selecting linear layers and bits per weight/input "
                    "(default: every linear layer at weight_bits/activation_bits)");
    return s;
  }

  void validate(const qlab::Options& o) const override { qlab::config_list_option(o, rules()); }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    qlab::PtqSpec spec;
    spec.scheme = "dynamic";
    spec.rules = rules();
    spec.config = qlab::config_list_option(o, spec.rules);
    spec.per_channel = o.get<bool>("per_channel") && ctx.engine.per_channel_weights;
    spec.reduce_range = ctx.engine.reduce_range;
    return qlab::post_training_quantize(std::move(trained), spec, *ctx.calibration);
  }

 private:
  static qlab::ConfigRules rules() {
    qlab::ConfigRules r;
    r.op_types = {qlab::Op::linear};
    r.quant_types = {"weight", "input"};
    r.op_types_reason = "dynamic quantization has int8 kernels for linear layers only";
    return r;
  }
};

}  // namespace

QLAB_PLUGIN(Dynamic, "quantizer", "dynamic",
            "post-training dynamic: int8 linear weights, activations quantized per batch")
