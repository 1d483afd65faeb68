// Static post-training quantization: weights and activations both get fixed
// qparams, the activations' from calibration batches of training data. At 8
// bits the model runs on int8 kernels end to end; at other widths it is
// simulated, and labelled so.
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/ptq.hpp>

namespace {

class Static final : public qlab::Quantizer {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("weight_bits", 8, "bits of weights (1: binary)", 1, 16)
        .integer("activation_bits", 8,
                 "bits of activations (1: two levels, 0 and the calibrated max)", 1, 16)
        .boolean("per_channel", true, "one weight scale per output channel")
        .string("observer", "minmax", "activation observer", qlab::observer_kinds())
        .number("percentile", 99.99, "percentile observer: share of values kept", 50.0, 100.0)
        .integer("calibration_batches", 32, "training batches the activation observers see", 0,
                 1000000)
        .table_list("config",
                    "NNI-style list selecting layers and bits per weight/input/output "
                    "(default: every conv2d and linear at weight_bits/activation_bits)");
    return s;
  }

  void validate(const qlab::Options& o) const override { qlab::config_list_option(o, rules()); }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    qlab::PtqSpec spec;
    spec.scheme = "static";
    spec.rules = rules();
    spec.config = qlab::config_list_option(o, spec.rules);
    spec.per_channel = o.get<bool>("per_channel") && ctx.engine.per_channel_weights;
    spec.observer = o.get<std::string>("observer");
    spec.percentile = o.get<double>("percentile");
    spec.calibration_batches = o.get<std::int64_t>("calibration_batches");
    spec.batch_size = ctx.batch_size;
    spec.reduce_range = ctx.engine.reduce_range;
    return qlab::post_training_quantize(std::move(trained), spec, *ctx.calibration);
  }

 private:
  static qlab::ConfigRules rules() { return {}; }
};

}  // namespace

QLAB_PLUGIN(Static, "quantizer", "static",
            "post-training static: calibrated activations, int8 end to end at 8 bits")
