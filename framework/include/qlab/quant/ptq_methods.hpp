#pragma once
// Remedies for post-training quantization below 8 bits that change the
// float model or the quantized one, not the grids: cross-layer
// equalization before the weights are quantized, bias correction after.
#include <qlab/plugin/data.hpp>
#include <qlab/quant/qmodel.hpp>

#include <string>
#include <vector>

namespace qlab {

/// What cross_layer_equalize did, for the result's notes.
struct Equalization {
  std::vector<std::string> pairs;    ///< "a -> b" for each pair rescaled
  std::vector<std::string> skipped;  ///< "a -> b: why" for each pair left as it is
};

/// Cross-layer equalization (Nagel et al. 2019, arXiv 1906.04721) of a
/// fused float model, in place: for each pair of conv2d (or linear) layers
/// where the first feeds only the second, through nothing but ReLU, pooling
/// or dropout, output channel i of the first is divided by
/// s_i = sqrt(r1_i / r2_i) and input channel i of the second multiplied by
/// it, where r1_i and r2_i are the channel's largest absolute weights; both
/// ranges become sqrt(r1_i r2_i). ReLU and pooling commute with a positive
/// scale, so the float function is unchanged; a ReLU6 between the layers
/// does not (its clip at 6 would move), so such pairs are skipped and named.
/// Pairs are swept `sweeps` times, as the paper iterates to convergence.
Equalization cross_layer_equalize(GraphModule& fused, int sweeps = 20);

/// Empirical bias correction (Nagel et al. 2019, section 4.2): for each
/// quantized layer of `q`, the mean over calibration data and positions of
/// the output shift that weight quantization causes, (W_q - W) x per output
/// channel, is subtracted from the layer's bias, in QLayer::bias and in the
/// float module the model simulates with. Inputs x are the float model's.
/// Returns one note per layer left out (no bias to correct).
std::vector<std::string> correct_biases(QuantizedModel& q, const Dataset& calibration,
                                        std::int64_t batches, std::int64_t batch_size);

}  // namespace qlab
