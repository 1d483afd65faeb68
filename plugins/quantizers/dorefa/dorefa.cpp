// DoReFa-Net (Zhou et al., arXiv 1606.06160): weights through tanh
// normalisation and k-bit uniform quantization (1 bit: sign times mean |w|),
// optional activations clipped to [0, 1] and quantized; straight-through
// gradients while the float baseline is fine-tuned.
#include <qlab/quant/qat.hpp>

namespace {

class Dorefa final : public qlab::Quantizer {
 public:
  qlab::QuantizerCaps caps() const override {
    qlab::QuantizerCaps c;
    c.weight_bits = 4;
    c.activation_bits = 0;
    c.float_activations = true;
    c.weight_help = "bits of weights (1: sign(w)·mean|w|)";
    c.activation_help = "bits of layer inputs and outputs, clipped to [0, 1] (0: float)";
    return c;
  }

  qlab::Schema options() const override {
    qlab::Schema s;
    s.boolean("keep_scale", true,
              "multiply each layer's [-1, 1] weights by its float max |w| (false: the paper's bare "
              "[-1, 1], for models whose batch norm absorbs the scale)");
    return qlab::add_finetune_options(s);
  }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    const bool keep_scale = o.get<bool>("keep_scale");
    qlab::FakeQuantFactory make;
    make.weight = [=](int bits, const torch::Tensor& w) {
      return qlab::dorefa_weight_quant(bits, w, keep_scale);
    };
    make.activation = [](int bits) { return qlab::dorefa_activation_quant(bits); };
    auto q = qlab::quantization_aware_training(std::move(trained),
                                               qlab::finetune_spec("dorefa", o, ctx), make, ctx);
    for (const auto& [name, layer] : q.layers)
      if (layer.weight.bits == 8) {
        q.notes.push_back(
            "dorefa: 8-bit DoReFa weights sit on 256 levels with no level at 0 (a zero point of "
            "-1/2), which int8 kernels cannot take: the model is simulated");
        break;
      }
    return q;
  }
};

}  // namespace

QLAB_PLUGIN(Dorefa, "quantizer", "dorefa",
            "DoReFa-Net weights (and optional [0, 1] activations), 1 to 16 bits")
