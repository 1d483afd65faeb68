// Bit layers on quint8 tensors: pack the input's codes into planes, run the
// kernels row by row on LibTorch's threads, requantize each row's dots.
#include "bit_layers.hpp"

#include "table_kernels.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <qlab/parallel.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace qlab::bits {
namespace {

const std::uint8_t* codes_of(const torch::Tensor& q) {
  return reinterpret_cast<const std::uint8_t*>(q.data_ptr<c10::quint8>());
}

// Winograd's F(2x2, 3x3) for W2A2 3x3 convolutions of stride 1, on VNNI
// or AVX2: 2.25x fewer int8 multiply-adds beat the four plane pairs' AND +
// popcounts and the fields' multiply-adds (docs/measurements.md). Weight
// codes past [-3, 3] stay on bit planes or fields. On AVX2, product tables
// for the other W2A2 convolutions whose kernel keeps its indices in
// registers (LeNet's 6->16 5x5: 1.3x against int8, where fields ran 1.2x,
// and 1.1x where fields fell to 0.9x when the host was slow).
Packing packing_for(const LayerSpec& spec, const torch::Tensor& codes, Isa isa) {
  const bool two_bit =
      spec.weight_bits == 2 && spec.activation_bits == 2 && !spec.linear && codes.dim() == 4;
  const bool vector = (isa == Isa::avx512 && cpu_has_vnni()) || isa == Isa::avx2;
  if (vector && two_bit && codes.size(2) == 3 && codes.size(3) == 3 && spec.stride == 1 &&
      spec.groups == 1 && codes.abs().max().item<int>() <= 3)
    return Packing::winograd;
  if (isa == Isa::avx2 && two_bit && codes.size(2) == codes.size(3)) {
    ConvGeometry g;
    g.groups = spec.groups;
    g.in_channels = codes.size(1) * spec.groups;
    g.kernel = codes.size(2);
    g.stride = spec.stride;
    if (tables_blocked(g) && tables_fit(g)) return Packing::tables;
  }
  return best_packing(isa, spec.weight_bits, spec.activation_bits, spec.linear);
}

}  // namespace

BitLayer::BitLayer(const LayerSpec& spec, const torch::Tensor& codes, const torch::Tensor& scale,
                   const torch::Tensor& bias, Isa isa, std::optional<Packing> packing)
    : spec_(spec), isa_(isa), packing_(packing.value_or(packing_for(spec, codes, isa))) {
  if (codes.scalar_type() != torch::kInt8) throw std::invalid_argument("weight codes must be int8");
  const std::int64_t out = codes.size(0);
  ConvGeometry g;
  g.out_channels = out;
  g.groups = spec.linear ? 1 : spec.groups;
  g.in_channels = spec.linear ? codes.size(1) : codes.size(1) * g.groups;
  g.kernel = spec.linear ? 1 : codes.size(2);
  g.height = g.width = g.kernel;
  // (out, kernel row, kernel column, channel): a tap's channels side by side.
  const auto ordered = spec.linear ? codes.contiguous() : codes.permute({0, 2, 3, 1}).contiguous();
  // Where pack_weights() does not run: the geometry and the code sums it
  // would have kept.
  const auto keep_geometry_and_sums = [&] {
    weights_.geometry = g;
    const auto sums = ordered.to(torch::kInt64).flatten(1).sum(1).to(torch::kInt32).contiguous();
    weights_.code_sums.assign(sums.data_ptr<std::int32_t>(), sums.data_ptr<std::int32_t>() + out);
  };
  if (packing_ == Packing::selected) {
    if (!spec.linear || spec.activation_bits != 1)
      throw std::invalid_argument("selected sums take linear layers of one-bit inputs");
    selected_ = select_weights(ordered.data_ptr<std::int8_t>(), out, g.in_channels);
    keep_geometry_and_sums();
  } else if (packing_ == Packing::winograd) {
    if (spec.linear) throw std::invalid_argument("Winograd kernels take conv2d layers");
    g.stride = spec.stride;
    g.padding = spec.padding;
    winograd_ = winograd_weights(g, ordered.data_ptr<std::int8_t>(), isa);
    keep_geometry_and_sums();
  } else {
    weights_ = pack_weights(g, ordered.data_ptr<std::int8_t>(), spec.weight_bits, isa, packing_);
  }
  const auto s = scale.to(torch::kFloat64).contiguous().expand({out}).contiguous();
  weight_scale_.assign(s.data_ptr<double>(), s.data_ptr<double>() + out);
  bias_.assign(static_cast<std::size_t>(out), 0.0);
  if (bias.defined()) {
    const auto b = bias.to(torch::kFloat64).contiguous();
    bias_.assign(b.data_ptr<double>(), b.data_ptr<double>() + out);
  }
}

std::string BitLayer::kernel() const {
  return fmt::format("bitserial::{}{} W{}A{} ({}{})", spec_.linear ? "linear" : "conv2d",
                     spec_.relu ? "_relu" : "", spec_.weight_bits, spec_.activation_bits,
                     to_string(isa_),
                     packing_ == Packing::planes ? "" : std::string(", ") + to_string(packing_));
}

ConvGeometry BitLayer::geometry(const torch::Tensor& x) const {
  ConvGeometry g = weights_.geometry;
  const std::int64_t want = spec_.linear ? 2 : 4;
  if (!x.is_quantized() || x.dim() != want || x.size(1) != g.in_channels)
    throw std::invalid_argument(fmt::format("{} takes a quint8 [N, {}{}] input, not [{}]", kernel(),
                                            g.in_channels, spec_.linear ? "" : ", H, W",
                                            fmt::join(x.sizes(), ", ")));
  g.batch = x.size(0);
  if (!spec_.linear) {
    g.height = x.size(2);
    g.width = x.size(3);
    g.stride = spec_.stride;
    g.padding = spec_.padding;
  }
  g.check();
  return g;
}

void BitLayer::for_outputs(const torch::Tensor& x, const ConvGeometry& g, bool parallel,
                           const Images& images, const Rows& row) const {
  const auto nhwc = spec_.linear ? x.contiguous() : x.contiguous(at::MemoryFormat::ChannelsLast);
  // The calling thread keeps its buffer from call to call (packing writes
  // every word; a fresh one would be mapped and faulted in anew at every
  // call). The workers reach it through this reference: a thread_local
  // named in the lambdas would be each worker's own.
  thread_local PackedActivations buffer;
  PackedActivations& packed = buffer;
  prepare_activations(g, spec_.activation_bits, packed, packing_);
  const auto pad = static_cast<std::uint8_t>(x.q_zero_point());
  const std::uint8_t* codes = codes_of(nhwc);
  const auto run_rows = [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t r = first; r < last; ++r) row(packed, r / g.out_height(), r % g.out_height());
  };
  // A layer with one output pixel per image (a linear layer, LeNet's last
  // conv) has rows of one column: a task's images run as one row instead.
  const bool one_pixel = packing_ == Packing::planes && g.out_height() == 1 && g.out_width() == 1;
  // An image per task where there are images enough for the threads: it is
  // packed and convolved in one pass, while its bits are still in cache.
  if (!parallel || g.batch >= at::get_num_threads()) {
    for_ranges(g.batch, 1, parallel, [&](std::int64_t first, std::int64_t last) {
      pack_activations(codes, pad, first, last, packed, isa_);
      if (one_pixel)
        images(packed, first, last);
      else
        run_rows(first * g.out_height(), last * g.out_height());
    });
    return;
  }
  for_ranges(g.batch, 1, parallel, [&](std::int64_t first, std::int64_t last) {
    pack_activations(codes, pad, first, last, packed, isa_);
  });
  for_ranges(g.batch * g.out_height(), 1, parallel, run_rows);
}

void BitLayer::for_winograd(const torch::Tensor& x, const ConvGeometry& g, bool parallel,
                            const Requant* q, std::int32_t* dots, std::uint8_t* codes) const {
  const auto nhwc = x.contiguous(at::MemoryFormat::ChannelsLast);
  const auto pad = static_cast<std::uint8_t>(x.q_zero_point());
  // Claimed in chunks, where fixed shares left one thread waiting on the
  // other (libgomp's spinning took 8.7% of the samples). The 64->64 W2A2
  // conv, fixed shares and chunks alternating in one process: at VNNI
  // -1% to +5% faster in six runs (2.38 against 2.51 ms, 2.14 against
  // 2.22), at AVX2 level. Up to 8 items, so a small batch still gives each
  // thread several.
  const std::int64_t items = winograd_items(g),
                     chunk = std::clamp<std::int64_t>(items / (4 * at::get_num_threads()), 1, 8);
  for_claimed(items, chunk, parallel, [&](std::int64_t first, std::int64_t last) {
    winograd_conv(g, codes_of(nhwc), pad, winograd_, first, last, q, dots, codes);
  });
}

void BitLayer::for_selected(const torch::Tensor& x, bool parallel, const Selected& run) const {
  const auto codes = x.contiguous();
  const std::uint8_t* a = codes_of(codes);
  const std::int64_t in = selected_.in;
  for_ranges(x.size(0), 1, parallel, [&](std::int64_t first, std::int64_t last) {
    std::vector<std::int32_t> dots(static_cast<std::size_t>((last - first) * selected_.out));
    selected_dots(selected_, a + first * in, last - first, dots.data(), isa_);
    run(dots.data(), first, last);
  });
}

torch::Tensor BitLayer::dots(const torch::Tensor& x, bool parallel) const {
  const ConvGeometry g = geometry(x);
  if (packing_ == Packing::selected) {
    auto out = torch::empty({g.batch, g.out_channels}, torch::kInt32);
    std::int32_t* dst = out.data_ptr<std::int32_t>();
    for_selected(x, parallel, [&](const std::int32_t* dots, std::int64_t first, std::int64_t last) {
      std::copy(dots, dots + (last - first) * g.out_channels, dst + first * g.out_channels);
    });
    return out;
  }
  auto out = torch::empty({g.batch, g.out_height(), g.out_width(), g.out_channels}, torch::kInt32);
  std::int32_t* dst = out.data_ptr<std::int32_t>();
  if (packing_ == Packing::winograd) {
    for_winograd(x, g, parallel, nullptr, dst, nullptr);
    return out;
  }
  const std::int64_t row = g.out_width() * g.out_channels;
  for_outputs(
      x, g, parallel,
      [&](const PackedActivations& p, std::int64_t first, std::int64_t last) {
        conv_images(p, weights_, first, last, dst + first * row, isa_);
      },
      [&](const PackedActivations& p, std::int64_t n, std::int64_t oh) {
        conv_row(p, weights_, n, oh, dst + (n * g.out_height() + oh) * row, isa_);
      });
  return spec_.linear ? out.view({g.batch, g.out_channels}) : out;
}

torch::Tensor BitLayer::operator()(const torch::Tensor& x, bool parallel) const {
  const ConvGeometry g = geometry(x);
  // code = round(m dot + c): the real output s_x s_w (dot - z_x sum w) + b
  // on the output grid.
  const std::int64_t oc = g.out_channels;
  std::vector<double> m(static_cast<std::size_t>(oc)), c(static_cast<std::size_t>(oc));
  const double sx = x.q_scale(), zx = static_cast<double>(x.q_zero_point());
  for (std::size_t k = 0; k < m.size(); ++k) {
    m[k] = sx * weight_scale_[k] / spec_.out_scale;
    c[k] = bias_[k] / spec_.out_scale + static_cast<double>(spec_.out_zero_point) -
           m[k] * zx * weights_.code_sums[k];
  }
  const double lo = spec_.relu
                        ? static_cast<double>(std::max<std::int64_t>(spec_.out_zero_point, 0))
                        : 0.0,
               hi = spec_.out_qmax;
  auto out =
      spec_.linear
          ? at::_empty_affine_quantized({g.batch, oc}, at::device(at::kCPU).dtype(torch::kQUInt8),
                                        spec_.out_scale, spec_.out_zero_point)
          : at::_empty_affine_quantized({g.batch, oc, g.out_height(), g.out_width()},
                                        at::device(at::kCPU).dtype(torch::kQUInt8), spec_.out_scale,
                                        spec_.out_zero_point, at::MemoryFormat::ChannelsLast);
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data_ptr<c10::quint8>());
  const std::int64_t row = g.out_width() * oc;
  // A 1- or 2-bit output grid: codes by comparisons (Requant), on AVX-512's
  // bit planes. On AVX2 they measured slower than the double path it keeps
  // (LeNet's features.3 by 12%, the fields kernel by 4%; in one binary).
  const auto t =
      isa_ == Isa::avx512 && (packing_ == Packing::planes || packing_ == Packing::winograd)
          ? thresholds_for(sx, zx, m, c, lo, hi)
          : nullptr;
  const Requant q{m.data(), c.data(), lo, hi, t && !t->values.empty() ? t->values.data() : nullptr,
                  oc};
  if (packing_ == Packing::selected) {
    for_selected(x, parallel, [&](const std::int32_t* dots, std::int64_t first, std::int64_t last) {
      requantize(dots, last - first, oc, q.m, q.c, q.lo, q.hi, dst + first * oc);
    });
    return out;
  }
  if (packing_ == Packing::winograd) {
    for_winograd(x, g, parallel, &q, nullptr, dst);
    return out;
  }
  for_outputs(
      x, g, parallel,
      [&](const PackedActivations& p, std::int64_t first, std::int64_t last) {
        conv_images_codes(p, weights_, first, last, q, dst + first * row, isa_);
      },
      [&](const PackedActivations& p, std::int64_t n, std::int64_t oh) {
        conv_row_codes(p, weights_, n, oh, q, dst + (n * g.out_height() + oh) * row, isa_);
      });
  return out;
}

std::shared_ptr<const BitLayer::Thresholds> BitLayer::thresholds_for(double scale,
                                                                     double zero_point,
                                                                     const std::vector<double>& m,
                                                                     const std::vector<double>& c,
                                                                     double lo, double hi) const {
  {
    std::lock_guard<std::mutex> lock(thresholds_mutex_);
    if (thresholds_ && thresholds_->scale == scale && thresholds_->zero_point == zero_point)
      return thresholds_;
  }
  auto fresh = std::make_shared<const Thresholds>(Thresholds{
      scale, zero_point,
      requant_thresholds(m.data(), c.data(), static_cast<std::int64_t>(m.size()), lo, hi)});
  std::lock_guard<std::mutex> lock(thresholds_mutex_);
  thresholds_ = fresh;
  return fresh;
}

namespace {

int planes_of(const QParams& grid) {
  const std::int64_t levels = grid.qmax - grid.qmin + 1;
  return levels <= 2 ? 1 : levels <= 4 ? 2 : 0;
}

}  // namespace

// The bit kernel for an offered layer, when its weights and input have at
// most 2 bits, or it is a linear layer on one-bit inputs.
std::optional<int8::LayerKernel> bit_layer_for(const int8::LayerOffer& o, Isa isa,
                                               std::optional<Packing> packing) {
  const int input_planes = planes_of(o.input);
  const bool selected = o.node.op == Op::linear && input_planes == 1 && o.layer.weight.bits <= 8;
  const int weight_planes = o.layer.weight.bits <= 2 || selected ? o.layer.weight.bits : 0;
  if (weight_planes == 0 || input_planes == 0) return std::nullopt;
  if (o.node.op != Op::conv2d && o.node.op != Op::linear) return std::nullopt;
  bits::LayerSpec spec;
  spec.linear = o.node.op == Op::linear;
  spec.stride = o.node.attrs.stride;
  spec.padding = o.node.attrs.padding;
  spec.groups = o.node.attrs.groups;
  spec.weight_bits = weight_planes;
  spec.activation_bits = input_planes;
  // A fused relu6 clamps at the grid's top, calibrated on relu6's outputs.
  spec.relu = o.node.attrs.activation != Activation::none;
  spec.out_scale = o.out_scale;
  spec.out_zero_point = o.out_zero_point;
  spec.out_qmax = o.out_qmax;
  const auto [codes, scale] = int8_codes(o.layer);
  auto layer = std::make_shared<const bits::BitLayer>(spec, codes, scale, o.bias, isa, packing);
  return int8::LayerKernel{layer->kernel(), [layer](const torch::Tensor& x, bool parallel) {
                             return (*layer)(x, parallel);
                           }};
}

}  // namespace qlab::bits
