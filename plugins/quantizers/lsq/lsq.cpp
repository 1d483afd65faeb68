// Learned Step Size Quantization (Esser et al., arXiv 1902.08153): the
// float baseline is fine-tuned with a learned step per weight tensor and
// per activation, initialised to 2·mean|v|/sqrt(Qp), its gradient scaled by
// 1/sqrt(N·Qp). At 8 bits the learned grids run on int8 kernels.
#include <qlab/quant/qat.hpp>

namespace {

class Lsq final : public qlab::Quantizer {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("weight_bits", 4, "bits of weights", 2, 8)
        .integer("activation_bits", 4, "bits of layer inputs and outputs", 2, 8);
    return qlab::add_finetune_options(s);
  }

  void validate(const qlab::Options& o) const override { qlab::config_list_option(o, rules()); }

  qlab::QuantizedModel quantize(qlab::GraphModule trained, const qlab::Options& o,
                                const qlab::QuantizeContext& ctx) const override {
    qlab::FakeQuantFactory make;
    make.weight = [](int bits, const torch::Tensor& w) { return qlab::lsq_weight(bits, w); };
    make.activation = [reduce = ctx.engine.reduce_range](int bits) {
      return qlab::lsq_activation(bits, reduce);
    };
    return qlab::quantization_aware_training(std::move(trained),
                                             qlab::finetune_spec("lsq", o, rules()), make, ctx);
  }

 private:
  static qlab::ConfigRules rules() {
    qlab::ConfigRules r;
    r.min_bits = 2;
    r.max_bits = 8;
    return r;
  }
};

}  // namespace

QLAB_PLUGIN(Lsq, "quantizer", "lsq", "learned step size quantization (LSQ), 2 to 8 bits")
