// Static post-training quantization: weights and activations both get fixed
// qparams, the activations' from calibration batches of training data. At 8
// bits the model runs on int8 kernels end to end; at other widths it is
// simulated, and labelled so.
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/ptq.hpp>

namespace {

class Static final : public qlab::Quantizer {
 public:
  qlab::QuantizerCaps caps() const override {
    qlab::QuantizerCaps c;
    c.activation_help = "bits of activations (1: two levels, 0 and the calibrated max)";
    return c;
  }

  qlab::Schema options() const override {
    qlab::Schema s;
    s.boolean("per_channel", true, "one weight scale per output channel")
        .string("weight_range", "minmax",
                "weight scales: minmax; mse (the clipping range with the least rounding "
                "error, searched per channel); or seq_mse (the clipping range whose layer "
                "output on calibration data is closest to the float layer's, layer by layer)",
                {"minmax", "mse", "seq_mse"})
        .boolean("narrow_range", false,
                 "weights on a grid without its lowest code, symmetric around 0 (2 bits: "
                 "ternary -1, 0, 1)")
        .string("observer", "minmax", "activation observer", qlab::observer_kinds())
        .string("output_range", "observer",
                "the range of the model's quantized logits: the observer's, or cross_entropy "
                "(the range within it whose quantized logits keep the float softmax best)",
                {"observer", "cross_entropy"})
        .number("percentile", 99.99, "percentile observer: share of values kept", 50.0, 100.0)
        .integer("calibration_batches", 32, "training batches the activation observers see", 0,
                 1000000)
        .boolean("equalize", false,
                 "cross-layer equalization (Nagel et al. 2019) of consecutive layers' weight "
                 "ranges before quantizing")
        .boolean("bias_correction", false,
                 "subtract from each layer's bias the mean output shift its weight "
                 "quantization causes on the calibration batches")
        .string("rounding", "nearest",
                "weight rounding: nearest, or adaround (learned per weight on calibration data, "
                "Nagel et al. 2020)",
                {"nearest", "adaround"})
        .integer("adaround_iterations", 500, "adaround: optimisation steps per layer", 1, 1000000)
        .integer("adaround_batches", 4, "adaround: calibration batches each layer is fitted on", 1,
                 100000)
        .number("adaround_weight", 0.01, "adaround: weight of the rounding regulariser", 0.0,
                1000.0);
    return s;
  }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    qlab::PtqSpec spec = qlab::ptq_spec(qlab::Scheme::static_, o, ctx);
    spec.observer = o.get<std::string>("observer");
    spec.percentile = o.get<double>("percentile");
    spec.calibration_batches = o.get<std::int64_t>("calibration_batches");
    return qlab::post_training_quantize(std::move(trained), spec, *ctx.calibration);
  }
};

}  // namespace

QLAB_PLUGIN(Static, "quantizer", "static",
            "post-training static: calibrated activations, int8 end to end at 8 bits")
