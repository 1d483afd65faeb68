#pragma once
// A conv2d or linear layer on the bit kernels (bit_kernels.hpp), between
// quint8 tensors as the int8 executable passes them: codes in, codes out.
#include "bit_kernels.hpp"
#include "selected_sums.hpp"
#include "winograd_kernels.hpp"

#include <aten_int8.hpp>

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace qlab::bits {

/// What the layer is; its weight codes come as int8 [out, in / groups, k, k]
/// (conv2d) or [out, in] (linear), with one scale per output channel or one.
struct LayerSpec {
  bool linear = false;
  std::int64_t stride = 1, padding = 0, groups = 1;
  int weight_bits = 1;      ///< bits of the weight codes: planes, or up to 8 for selected sums
  int activation_bits = 1;  ///< planes of the input codes
  bool relu = false;        ///< clamp the output at its zero point
  double out_scale = 1;     ///< the output grid: codes [0, out_qmax]
  std::int64_t out_zero_point = 0;
  std::uint8_t out_qmax = 255;
};

class BitLayer {
 public:
  /// Throws std::invalid_argument when the codes do not fit the widths.
  /// `packing`: which kernel runs; by default Winograd's for a W2A2 3x3
  /// convolution of stride 1 on VNNI (Isa::avx512) or AVX2; on AVX2,
  /// product tables for the other W2A2 convolutions that tables_blocked();
  /// else best_packing's.
  BitLayer(const LayerSpec& spec, const torch::Tensor& codes, const torch::Tensor& scale,
           const torch::Tensor& bias, Isa isa, std::optional<Packing> packing = std::nullopt);

  /// The layer on a quint8 input (NCHW shape, any memory format; [N, in]
  /// for linear) whose codes lie below 2^activation_bits: quint8 out,
  /// channels-last for conv2d. `parallel`: over LibTorch's threads.
  torch::Tensor operator()(const torch::Tensor& x, bool parallel) const;

  /// The integer dots sum a w alone, int32 [N, OH, OW, out] ([N, out] for
  /// linear): what an int8 kernel accumulates from the same codes.
  torch::Tensor dots(const torch::Tensor& x, bool parallel) const;

  /// How reports name it: "bitserial::conv2d_relu W1A1 (avx2)", or
  /// "... W2A2 (avx2, fields)" on packed fields.
  std::string kernel() const;

 private:
  ConvGeometry geometry(const torch::Tensor& x) const;
  using Images =
      std::function<void(const PackedActivations&, std::int64_t first, std::int64_t last)>;
  using Rows = std::function<void(const PackedActivations&, std::int64_t n, std::int64_t oh)>;
  // Packs x and runs `images` on each task's images where a layer on bit
  // planes has one output pixel per image, else `row` on each output row
  // (image n, row oh); on LibTorch's threads when `parallel`.
  void for_outputs(const torch::Tensor& x, const ConvGeometry& g, bool parallel,
                   const Images& images, const Rows& row) const;
  // Packing::selected: `run` on the dots of each task's images [first, last).
  using Selected =
      std::function<void(const std::int32_t* dots, std::int64_t first, std::int64_t last)>;
  void for_selected(const torch::Tensor& x, bool parallel, const Selected& run) const;
  // Packing::winograd: dots (no `q`) or codes of every image.
  void for_winograd(const torch::Tensor& x, const ConvGeometry& g, bool parallel, const Requant* q,
                    std::int32_t* dots, std::uint8_t* codes) const;

  // requant_thresholds() for the input grid (scale, zero point) that set
  // them: a layer's calls share one, and finding them at every call cost
  // LeNet's W1A1 model more (1.3% of its time) than the compares saved.
  struct Thresholds {
    double scale, zero_point;
    std::vector<std::int32_t> values;  // empty where the grid takes none
  };
  std::shared_ptr<const Thresholds> thresholds_for(double scale, double zero_point,
                                                   const std::vector<double>& m,
                                                   const std::vector<double>& c, double lo,
                                                   double hi) const;

  LayerSpec spec_;
  Isa isa_;
  Packing packing_;
  PackedWeights weights_;             // Packing::selected: its geometry and code sums only
  SelectedWeights selected_;          // Packing::selected
  WinogradWeights winograd_;          // Packing::winograd
  std::vector<double> weight_scale_;  // per output channel
  std::vector<double> bias_;          // per output channel, 0 when absent
  mutable std::mutex thresholds_mutex_;
  mutable std::shared_ptr<const Thresholds> thresholds_;
};

/// The bit layer for a layer the int8 executable offers, when its weights
/// and its input have at most 2 bits (a conv2d or linear layer), or it is a
/// linear layer of one-bit inputs and weights of up to 8 bits (selected
/// sums).
std::optional<int8::LayerKernel> bit_layer_for(const int8::LayerOffer& offer, Isa isa,
                                               std::optional<Packing> packing = std::nullopt);

}  // namespace qlab::bits
