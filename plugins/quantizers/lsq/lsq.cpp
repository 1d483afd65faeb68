// Learned Step Size Quantization (Esser et al., arXiv 1902.08153): the
// float baseline is fine-tuned with a learned step per weight tensor and
// per activation, initialised to 2·mean|v|/sqrt(Qp), its gradient scaled by
// 1/sqrt(N·Qp). At 8 bits the learned grids run on int8 kernels.
#include <qlab/quant/qat.hpp>

namespace {

class Lsq final : public qlab::Quantizer {
 public:
  qlab::QuantizerCaps caps() const override {
    qlab::QuantizerCaps c;
    c.rules.min_bits = 2;
    c.rules.max_bits = 8;
    c.weight_bits = c.activation_bits = 4;
    c.weight_help = "bits of weights";
    return c;
  }

  qlab::Schema options() const override {
    qlab::Schema s;
    return qlab::add_finetune_options(s);
  }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    qlab::FakeQuantFactory make;
    make.weight = [](int bits, const torch::Tensor& w) { return qlab::lsq_weight(bits, w); };
    make.activation = [reduce = ctx.engine.reduce_range](int bits) {
      return qlab::lsq_activation(bits, reduce);
    };
    return qlab::quantization_aware_training(std::move(trained), qlab::finetune_spec("lsq", o, ctx),
                                             make, ctx);
  }
};

}  // namespace

QLAB_PLUGIN(Lsq, "quantizer", "lsq", "learned step size quantization (LSQ), 2 to 8 bits")
