#include <qlab/error.hpp>
#include <qlab/quant/quant.hpp>

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace qlab {
namespace {

// Smallest scale, as PyTorch's observers use: keeps an all-zero tensor finite.
constexpr double kMinScale = 1.1920928955078125e-07;

// View of per-channel parameters that broadcasts against x along `axis`.
// qparams live on the host; a per-channel one must follow x to its device
// (a 0-dim host tensor mixes with a device tensor as it is).
torch::Tensor along(const torch::Tensor& v, const torch::Tensor& x, int axis) {
  if (axis < 0) return v.reshape({});
  std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
  shape[static_cast<std::size_t>(axis)] = -1;
  return v.to(x.device()).view(shape);
}

// One row per channel along `axis` (one row in all when axis < 0).
torch::Tensor channel_rows(const torch::Tensor& w, int axis) {
  return axis < 0 ? w.reshape({1, -1}) : w.transpose(0, axis).reshape({w.size(axis), -1});
}

}  // namespace

std::pair<std::int64_t, std::int64_t> grid(int bits, bool symmetric, bool reduce_range) {
  if (bits < 1 || bits > 16) throw Error(fmt::format("bit width {} is not in 1..16", bits));
  if (bits == 1) return {0, 1};
  const int b = reduce_range ? bits - 1 : bits;
  if (symmetric) return {-(std::int64_t{1} << (b - 1)), (std::int64_t{1} << (b - 1)) - 1};
  return {0, (std::int64_t{1} << b) - 1};
}

QParams qparams_from_range(const torch::Tensor& min_in, const torch::Tensor& max_in, int bits,
                           bool symmetric, int axis, bool reduce_range) {
  QParams p;
  p.bits = bits;
  p.symmetric = symmetric;
  p.axis = axis;
  std::tie(p.qmin, p.qmax) = grid(bits, symmetric, reduce_range);
  p.min = min_in.to(torch::kFloat64).reshape({-1});
  p.max = max_in.to(torch::kFloat64).reshape({-1});
  const auto lo = p.min.clamp_max(0.0), hi = p.max.clamp_min(0.0);
  const double levels = static_cast<double>(p.qmax - p.qmin);
  if (symmetric) {
    p.scale = torch::max(-lo, hi).div(levels / 2.0).clamp_min(kMinScale);
    p.zero_point = torch::zeros_like(p.scale, torch::kInt64);
  } else {
    p.scale = (hi - lo).div(levels).clamp_min(kMinScale);
    p.zero_point = (static_cast<double>(p.qmin) - (lo / p.scale).round())
                       .clamp(static_cast<double>(p.qmin), static_cast<double>(p.qmax))
                       .to(torch::kInt64);
  }
  p.scale = p.scale.to(torch::kFloat32).to(torch::kFloat64);  // exact after a float32 round trip
  return p;
}

QParams binary_qparams(const torch::Tensor& w, int axis) {
  QParams p;
  p.bits = 1;
  p.symmetric = true;
  p.axis = axis;
  p.qmin = 0;
  p.qmax = 1;
  const auto flat = channel_rows(w, axis);
  p.scale = flat.abs().mean(1).clamp_min(kMinScale).to(torch::kFloat64);
  p.zero_point = torch::zeros_like(p.scale, torch::kInt64);
  p.min = flat.amin(1).to(torch::kFloat64);
  p.max = flat.amax(1).to(torch::kFloat64);
  return p;
}

QParams weight_qparams(const torch::Tensor& w, int bits, int axis, WeightRange range, bool narrow) {
  const auto flat = channel_rows(w, axis).detach().to(torch::kFloat32);
  const auto amax = flat.abs().amax(1);
  auto [qmin, qmax] = grid(bits, /*symmetric=*/true);
  if (narrow) qmin = -qmax;
  const double half_levels = static_cast<double>(qmax - qmin) / 2.0;
  auto clip = amax;
  if (range == WeightRange::mse) {
    // 141 candidate clipping ranges; the error of each is one pass over the weight.
    auto best_error = torch::full_like(amax, std::numeric_limits<float>::infinity());
    for (int k = 10; k <= 150; ++k) {
      const auto candidate = amax * (k / 100.0);
      const auto scale = (candidate / half_levels).clamp_min(kMinScale).unsqueeze(1);
      const auto error =
          flat.div(scale).round().clamp(qmin, qmax).mul(scale).sub(flat).square().sum(1);
      const auto better = error < best_error;
      best_error = torch::where(better, error, best_error);
      clip = torch::where(better, candidate, clip);
    }
  }
  QParams p = qparams_from_range(-clip, clip, bits, /*symmetric=*/true, axis);
  if (narrow) {
    p.qmin = qmin;
    p = with_clip(std::move(p), clip);
  }
  p.min = flat.amin(1).to(torch::kFloat64);  // the weight's own range, for the record
  p.max = flat.amax(1).to(torch::kFloat64);
  return p;
}

QParams with_clip(QParams p, const torch::Tensor& clip) {
  const double half_levels = static_cast<double>(p.qmax - p.qmin) / 2.0;
  p.scale = (clip.to(torch::kFloat64) / half_levels)
                .clamp_min(kMinScale)
                .to(torch::kFloat32)
                .to(torch::kFloat64);
  return p;
}

torch::Tensor quantize_codes(const torch::Tensor& x, const QParams& p) {
  if (p.binary()) return x.ge(0).to(torch::kInt64);
  const auto scale = along(p.scale.to(x.dtype()), x, p.axis);
  const auto zp = along(p.zero_point, x, p.axis);
  if (p.zero_point.is_floating_point())  // a half-step grid (DoReFa): round after the shift
    return x.div(scale).add(zp).round().clamp(p.qmin, p.qmax).to(torch::kInt64);
  return x.div(scale).round().to(torch::kInt64).add(zp).clamp(p.qmin, p.qmax);
}

torch::Tensor dequantize_codes(const torch::Tensor& codes, const QParams& p) {
  const auto scale = along(p.scale.to(torch::kFloat32), codes, p.axis);
  if (p.binary()) return codes.to(torch::kFloat32).mul(2).sub(1).mul(scale);
  return codes.sub(along(p.zero_point, codes, p.axis)).to(torch::kFloat32).mul(scale);
}

torch::Tensor fake_quantize(const torch::Tensor& x, const QParams& p) {
  const auto q = dequantize_codes(quantize_codes(x.detach(), p), p).to(x.dtype());
  if (!x.requires_grad()) return q;
  if (p.binary()) return q + (x - x.detach());
  // Straight-through: gradient 1 where x falls inside the grid, 0 where clipped.
  const auto scale = along(p.scale.to(x.dtype()), x, p.axis);
  const auto raw = x.detach().div(scale).round().add(along(p.zero_point, x, p.axis));
  const auto inside = raw.ge(p.qmin).logical_and(raw.le(p.qmax)).to(x.dtype());
  return q + (x - x.detach()) * inside;
}

torch::Tensor pack_codes(const torch::Tensor& codes, int bits, std::int64_t qmin) {
  QLAB_CHECK(bits >= 1 && bits <= 16, "bits in 1..16");
  const auto values = codes.reshape({-1}).sub(qmin).to(torch::kInt64).contiguous();
  const std::int64_t n = values.numel();
  auto packed = torch::zeros({(n * bits + 7) / 8}, torch::kUInt8);
  const auto* v = values.data_ptr<std::int64_t>();
  auto* out = packed.data_ptr<std::uint8_t>();
  std::uint64_t acc = 0;
  int filled = 0;
  std::int64_t pos = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    QLAB_CHECK(v[i] >= 0 && v[i] < (std::int64_t{1} << bits), "code outside its grid");
    acc |= static_cast<std::uint64_t>(v[i]) << filled;
    filled += bits;
    while (filled >= 8) {
      out[pos++] = static_cast<std::uint8_t>(acc & 0xff);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[pos] = static_cast<std::uint8_t>(acc & 0xff);
  return packed;
}

torch::Tensor unpack_codes(const torch::Tensor& packed, int bits, std::int64_t qmin,
                           std::int64_t numel) {
  QLAB_CHECK(packed.numel() * 8 >= numel * bits, "packed buffer too small");
  auto codes = torch::empty({numel}, torch::kInt64);
  const auto bytes = packed.contiguous();
  const auto* in = bytes.data_ptr<std::uint8_t>();
  auto* out = codes.data_ptr<std::int64_t>();
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  std::uint64_t acc = 0;
  int filled = 0;
  std::int64_t pos = 0;
  for (std::int64_t i = 0; i < numel; ++i) {
    while (filled < bits) {
      acc |= static_cast<std::uint64_t>(in[pos++]) << filled;
      filled += 8;
    }
    out[i] = static_cast<std::int64_t>(acc & mask) + qmin;
    acc >>= bits;
    filled -= bits;
  }
  return codes;
}

nlohmann::json QParams::to_json() const {
  auto list = [](const torch::Tensor& t, bool as_int) {
    nlohmann::json j = nlohmann::json::array();
    const auto c = t.to(torch::kFloat64).contiguous();
    for (std::int64_t i = 0; i < c.numel(); ++i) {
      const double v = c.data_ptr<double>()[i];
      j.push_back(as_int ? nlohmann::json(static_cast<std::int64_t>(v)) : nlohmann::json(v));
    }
    return j.size() == 1 ? j[0] : j;
  };
  nlohmann::json j = {{"bits", bits},
                      {"symmetric", symmetric},
                      {"per_channel", per_channel()},
                      {"scale", list(scale, false)},
                      {"zero_point", list(zero_point, !zero_point.is_floating_point())}};
  if (min.defined()) {
    j["tracked_min"] = min.min().item<double>();
    j["tracked_max"] = max.max().item<double>();
  }
  return j;
}

}  // namespace qlab
