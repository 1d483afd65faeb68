#pragma once
// Quantizer plugins: how float layers become quantized layers. A quantizer
// is mostly policy over the framework's core (quant.hpp, ptq.hpp): which
// observer, which layers, which bit widths.
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/options.hpp>
#include <qlab/plugin/plugin.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/quant/config_list.hpp>
#include <qlab/quant/qmodel.hpp>

namespace qlab {

class CalibrationCache;

/// What the chosen backend's int8 kernels require of quantized tensors.
struct EngineConstraints {
  bool reduce_range = false;        ///< 8-bit activations on 7 bits (16-bit pair sums)
  bool per_channel_weights = true;  ///< per-channel weight scales supported
  /// How the engine multiplies int8 on this CPU ("VNNI", "AVX2, 16-bit pair
  /// sums"); empty for a backend without CPU int8 kernels. Every row records it.
  std::string int8_path;
  /// Set when the user's settings risk wrong results (full-range activations
  /// on a CPU that sums pairs in 16 bits); printed and kept in the row's notes.
  std::string warning;
};

/// What a quantizer is given besides the trained model and its options.
struct QuantizeContext {
  const Dataset* calibration = nullptr;  ///< the training split
  std::int64_t batch_size = 64;          ///< the recipe's batch size
  EngineConstraints engine;
  /// The layers to quantize and their bits: the `config` list, checked
  /// against the quantizer's caps() when the experiment was resolved, or
  /// the one-entry list its weight_bits and activation_bits mean.
  std::vector<ConfigEntry> config;
  ConfigRules rules;  ///< caps().rules, which select_layers() needs again
  /// For training-aware quantizers: the model (its loss), the baseline's
  /// recipe (fine-tuning starts from it), and where and how to train.
  const Model* model = nullptr;
  TrainRecipe recipe;
  TrainSettings training;
  /// Set by a sweep (null otherwise): calibration statistics shared by its
  /// points, under `model_id`, which names the trained float model and the
  /// calibration data (post_training_quantize uses both).
  CalibrationCache* calibration_cache = nullptr;
  std::string model_id;
};

class Quantizer : public Plugin {
 public:
  /// What it can quantize: layer kinds, tensors, bit range, defaults.
  virtual QuantizerCaps caps() const = 0;
  /// Options it accepts in `[quantizer]` besides `name` and the bit options
  /// caps() implies (see schema()).
  virtual Schema options() const { return {}; }
  /// Quantizes a trained float model (not modified); throws qlab::Error for
  /// settings that cannot work, saying why.
  virtual QuantizedModel quantize(GraphModule trained, const Options& opts,
                                  const QuantizeContext& ctx) const = 0;

  /// Every option of `[quantizer]`: options() and the bit options of caps().
  Schema schema() const {
    Schema s = options();
    return add_bit_options(s, caps());
  }
};

}  // namespace qlab
