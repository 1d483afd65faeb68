#pragma once
// Remedies for post-training quantization below 8 bits that change the
// float model or the quantized one, not the grids: cross-layer
// equalization before the weights are quantized, AdaRound's learned
// rounding of them, bias correction after.
#include <qlab/plugin/data.hpp>
#include <qlab/quant/qmodel.hpp>

#include <functional>
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

/// `count` images of `calibration` (all of them when it has fewer), in an
/// order fixed by `seed`, so that a method sees the same sample in every
/// run. Throws qlab::Error naming `method` when the set is empty.
torch::Tensor calibration_sample(const Dataset& calibration, std::int64_t count, std::uint64_t seed,
                                 const std::string& method);
/// The same images with their labels, for methods that need the loss.
Dataset calibration_subset(const Dataset& calibration, std::int64_t count, std::uint64_t seed,
                           const std::string& method);

/// A sample's activations at one node, in slices of images along dim 0.
using Slices = std::vector<torch::Tensor>;

/// Called by walk_two_streams at each quantized layer of the model, with
/// the layer's input in the float model and in the quantized one; it may
/// change the layer's codes and bias, which the quantized model then uses.
using LayerVisit = std::function<void(const Node& node, QLayer& layer, const Slices& x_float,
                                      const Slices& x_quantized)>;

/// Runs `q` over `images` node by node, as two models at once: its float
/// model, and the quantized model, whose layers compute with their
/// dequantized codes once `visit` has seen them, layer by layer in graph
/// order, and whose activations lie on their calibrated grids
/// (q.activations: so a layer sees the input the int8 model gives it). One
/// pass, whatever the number of layers; an activation is freed after its
/// last reader. A node's float output is computed before `visit` sees it,
/// so a visit may change the layer's bias for the quantized model without
/// changing the float one.
void walk_two_streams(QuantizedModel& q, const torch::Tensor& images, const LayerVisit& visit);

/// Layer `n`'s output on `x` with weight `w`, through its fused activation,
/// by the op table's own forward: the layer-wise methods fit f(W~ x) to
/// f(W x), so errors that a ReLU removes cost nothing.
torch::Tensor layer_output(const GraphModule& m, const Node& n, const torch::Tensor& x,
                           const torch::Tensor& w);

/// Sequential MSE (as AIMET names it), on `q`'s quantized layers in graph
/// order: each weight channel's clipping range, from 0.1x to 1.5x its largest
/// |w|, is the one whose layer output on the quantized model's input (the
/// layers before it already searched) is closest, in squared error, to the
/// float layer's output on the float input. Channels are searched at once,
/// as each output channel depends on its own weights only. Sets QLayer::weight's
/// scales and the codes on them; binary and half-step grids are left as they
/// are. Returns notes.
std::vector<std::string> search_weight_ranges(QuantizedModel& q, const torch::Tensor& images);

/// The range of each model output that is quantized logits (one row of
/// scores per image), chosen for the classification it feeds rather than
/// for squared error (Nagel et al. 2021, arXiv 2106.08295: the order of the
/// largest values matters, not the rest): among 441 ranges inside the
/// calibrated one (top 0.3x to 1x of it, bottom 0 to 1x), the one whose
/// fake-quantized float outputs on `images` have the least cross-entropy
/// against the float outputs' softmax. Sets q.activations; other outputs
/// are named and left as they are. Returns notes.
std::vector<std::string> search_output_ranges(QuantizedModel& q, const torch::Tensor& images);

struct AdaRoundOptions {
  int iterations = 500;          ///< Adam steps per layer
  std::int64_t samples = 256;    ///< calibration images each layer's rounding is fitted on
  std::int64_t batch = 32;       ///< images per step
  double regularization = 0.01;  ///< weight of the term that drives each rounding to up or down
  double learning_rate = 1e-2;
};

/// AdaRound (Nagel et al. 2020, arXiv 2004.10568) on `q`'s quantized layers,
/// in graph order: each weight's rounding, up or down from floor(w / s), is
/// learned by minimising the layer's output error on calibration images,
/// ||W x - W~ x^||^2 with x the float model's input to the layer and x^ the
/// input once the layers before it are rounded, plus an annealed term that
/// forces every soft rounding to 0 or 1. The scales stay those of `q`; only
/// QLayer::codes change, and they stay on the grid. Binary and half-step
/// grids have no rounding to learn and are left as they are. Returns notes.
std::vector<std::string> adaround(QuantizedModel& q, const Dataset& calibration,
                                  const AdaRoundOptions& options);

/// Empirical bias correction (Nagel et al. 2019, section 4.2), layer by
/// layer in graph order: each quantized layer's bias loses the mean over
/// `images` and positions of its output shift per output channel, W_q x^ -
/// W x, where x is the float model's input to the layer and x^ the input
/// once the layers before it are quantized and corrected. So it also
/// corrects what earlier layers' errors did to this layer's input, and it
/// composes with AdaRound, whose rounding was fitted on x^ too. The
/// corrected bias goes to QLayer::bias and to the float module the model
/// simulates with. Returns one note per layer left out (no bias).
std::vector<std::string> correct_biases(QuantizedModel& q, const torch::Tensor& images);

}  // namespace qlab
