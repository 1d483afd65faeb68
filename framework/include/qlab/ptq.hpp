#pragma once
// Post-training quantization, the shared machinery of the `dynamic` and
// `static` quantizer plugins: fuse, quantize weights, calibrate activations.
#include <qlab/data.hpp>
#include <qlab/qmodel.hpp>

#include <set>

namespace qlab {

struct PtqSpec {
  std::string scheme = "static";  ///< static | dynamic
  int weight_bits = 8;
  int activation_bits = 8;
  bool per_channel = true;          ///< weights per output channel
  std::string observer = "minmax";  ///< static: activation observer (observer_kinds())
  double percentile = 99.99;        ///< for the percentile observer
  std::int64_t calibration_batches = 32;
  std::int64_t batch_size = 64;
  bool reduce_range = false;        ///< the engine needs 7-bit activations
  std::set<Op> ops{Op::conv2d, Op::linear};  ///< which layers to quantize
  /// Why a layer of another op type stays float, for the result's list.
  std::string float_reason = "not selected for quantization";
};

/// Fuses `trained`, quantizes the weights of every selected layer and, for
/// the static scheme, calibrates activation qparams on `calibration`
/// batches (a fixed, seed-independent sample of them). Throws qlab::Error when
/// static quantization is asked for with no calibration batches.
QuantizedModel post_training_quantize(GraphModule trained, const PtqSpec& spec,
                                      const Dataset& calibration);

}  // namespace qlab
