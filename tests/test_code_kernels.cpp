// qlab's kernels on quint8 codes against LibTorch's own results.
#include <code_kernels.hpp>

#include <gtest/gtest.h>

namespace qlab::int8 {
namespace {

torch::Tensor codes(const torch::Tensor& q) { return q.int_repr().to(torch::kInt32); }

TEST(CodeKernels, QuantizeGivesLibTorchsCodes) {
  torch::manual_seed(0);
  const double scale = 0.05;
  const std::int64_t zero_point = 70;
  // Values beyond both ends of the grid, and exact ties between two codes.
  auto x = torch::randn({4, 3, 9, 7}) * 5;
  x.view(-1).slice(0, 0, 40) = (torch::arange(40) - 20).to(torch::kFloat) * scale + scale / 2;
  for (bool parallel : {false, true}) {
    const auto got = quantize_codes(x, scale, zero_point, parallel);
    const auto want = at::quantize_per_tensor(x, scale, zero_point, torch::kQUInt8);
    EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_EQ(got.q_scale(), scale);
    EXPECT_EQ(got.q_zero_point(), zero_point);
    EXPECT_TRUE(torch::equal(codes(got), codes(want))) << (codes(got) - codes(want)).abs().max();
  }
  const auto flat = torch::randn({5, 33});
  EXPECT_TRUE(torch::equal(codes(quantize_codes(flat, 0.02, 128, true)),
                           codes(at::quantize_per_tensor(flat, 0.02, 128, torch::kQUInt8))));
}

TEST(CodeKernels, NarrowGridsClampTheCodes) {
  torch::manual_seed(2);
  // A 7-bit grid inside the 8-bit codes, as reduce_range gives, and a 4-bit one.
  for (auto [qmin, qmax] : {std::pair<int, int>{0, 127}, std::pair<int, int>{3, 18}}) {
    for (auto shape : {std::vector<std::int64_t>{3, 5, 7, 9}, std::vector<std::int64_t>{13, 31}}) {
      const auto x = torch::randn(shape) * 4;
      const auto want =
          codes(at::quantize_per_tensor(x, 0.03, 64, torch::kQUInt8)).clamp(qmin, qmax);
      for (bool parallel : {false, true}) {
        const auto u8min = static_cast<std::uint8_t>(qmin), u8max = static_cast<std::uint8_t>(qmax);
        EXPECT_TRUE(torch::equal(codes(quantize_codes(x, 0.03, 64, parallel, u8min, u8max)), want));
        for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
          if (shape.size() != 4 && format == at::MemoryFormat::ChannelsLast) continue;
          auto q = at::quantize_per_tensor(x, 0.03, 64, torch::kQUInt8).contiguous(format);
          clamp_codes_(q, u8min, u8max, parallel);
          EXPECT_TRUE(torch::equal(codes(q), want)) << qmin << ".." << qmax;
          EXPECT_TRUE(q.is_contiguous(format));
        }
      }
    }
  }
  auto strided = at::quantize_per_tensor(torch::rand({4, 6}), 0.1, 0, torch::kQUInt8).t();
  EXPECT_TRUE(strided.is_non_overlapping_and_dense());  // a transpose is still dense
  auto sliced = at::quantize_per_tensor(torch::rand({4, 6}), 0.1, 0, torch::kQUInt8).slice(1, 0, 3);
  EXPECT_THROW(clamp_codes_(sliced, 0, 127, false), c10::Error);
}

// Half to even among the values (mean code - z), as ONNX's QDQ pooling
// rounds; the odd zero point makes every tie break differently from
// rounding the mean code itself.
TEST(CodeKernels, AveragePoolingRoundsTheMeanValueHalfToEven) {
  torch::manual_seed(1);
  struct Window {
    std::int64_t height, width, stride;
  };
  // Windows of 2^k pixels round in integers, the others in float; past 257
  // pixels (17 x 16) the sums leave 16 bits. Fewer channels than 16 take
  // the fixed-span loops, more the contiguous ones.
  const Window windows[] = {{2, 2, 2}, {3, 2, 2}, {3, 3, 2}, {11, 9, 1}, {1, 1, 1},
                            {1, 2, 1}, {4, 2, 3}, {4, 4, 4}, {17, 16, 1}};
  // Codes spread over the grid, and codes near its top, whose sums over the
  // 17 x 16 window would wrap in 16 bits.
  const std::pair<double, double> ranges[] = {{0, 4}, {4.9, 0.3}};
  for (std::int64_t channels : {1, 5, 16, 20})
    for (const auto& [low, width] : ranges) {
      const auto x = at::quantize_per_tensor(torch::rand({3, channels, 18, 17}) * width + low, 0.02,
                                             3, torch::kQUInt8);
      for (const auto& [kh, kw, stride] : windows)
        for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast})
          for (bool parallel : {false, true}) {
            const auto in = x.contiguous(format);
            const auto got = avg_pool_codes(in, {kh, kw}, {stride, stride}, parallel);
            const auto want =
                torch::avg_pool2d(in.int_repr().to(torch::kFloat), {kh, kw}, {stride, stride})
                    .sub(3)
                    .round()
                    .add(3);
            EXPECT_TRUE(got.is_contiguous(format));
            EXPECT_EQ(got.q_scale(), x.q_scale());
            EXPECT_TRUE(torch::equal(codes(got), want.to(torch::kInt32)))
                << channels << " from " << low << ": " << kh << "x" << kw << "/" << stride;
          }
    }
}

}  // namespace
}  // namespace qlab::int8
