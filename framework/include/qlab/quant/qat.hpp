#pragma once
// Training-aware quantization, the shared machinery of the `qat`, `dorefa`
// and `lsq` quantizer plugins: fine-tune the float baseline with fake
// quantization on the layers a config list selects, then hand the trained
// grids to a QuantizedModel (int8 where every tensor is 8-bit, else
// simulated).
#include <qlab/plugin/quantizer.hpp>
#include <qlab/quant/config_list.hpp>
#include <qlab/quant/fake_quant.hpp>

#include <functional>

namespace qlab {

struct QatSpec {
  std::string name;  ///< the quantizer, for labels and notes
  std::vector<ConfigEntry> config;
  ConfigRules rules;
  std::int64_t epochs = 1;                   ///< fine-tuning epochs
  double lr_factor = 0.1;                    ///< fine-tuning lr = the baseline recipe's lr x this
  std::int64_t freeze_observers_after = -1;  ///< epochs; -1: never
  std::int64_t freeze_bn_after = -1;         ///< epochs; -1: never
};

/// The fake quantizers a plugin trains with. `weight` is given the layer's
/// weight with its batch norm folded in, as the converted model will hold it.
struct FakeQuantFactory {
  std::function<std::unique_ptr<WeightFakeQuant>(int bits, const torch::Tensor& weight)> weight;
  std::function<std::unique_ptr<ActivationFakeQuant>(int bits)> activation;
};

/// QAT's fake quantizers: min/max weights (per channel or per tensor) and
/// moving-average activation ranges (reduce_range at 8 bits if asked).
FakeQuantFactory qat_fake_quant(bool per_channel, bool reduce_range);

/// Adds the options every training-aware quantizer shares: epochs and lr_factor.
Schema& add_finetune_options(Schema& schema);
/// A QatSpec from those options and the context's config list and rules.
QatSpec finetune_spec(const std::string& name, const Options& options, const QuantizeContext& ctx);

/// Fine-tunes a copy of `trained` with fake quantization and converts it.
/// A conv followed by batch norm trains on the folded weight (rescaled
/// back, PyTorch's ConvBn approach), so the converted layer is exactly what
/// was trained. Throws qlab::Error when training diverges or no data is given.
QuantizedModel quantization_aware_training(GraphModule trained, const QatSpec& spec,
                                           const FakeQuantFactory& make,
                                           const QuantizeContext& ctx);

}  // namespace qlab
