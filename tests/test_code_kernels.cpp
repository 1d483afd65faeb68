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

TEST(CodeKernels, AveragePoolingRoundsTheMeanCodeHalfToEven) {
  torch::manual_seed(1);
  // Few channels take the gathering loop, many the contiguous one.
  for (std::int64_t channels : {5, 20}) {
    const auto x =
        at::quantize_per_tensor(torch::rand({3, channels, 11, 9}) * 4, 0.02, 3, torch::kQUInt8);
    const std::pair<std::int64_t, std::int64_t> windows[] = {{2, 2}, {3, 2}, {3, 3}, {11, 1}};
    for (const auto& [kernel, stride] : windows)
      for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast})
        for (bool parallel : {false, true}) {
          const auto in = x.contiguous(format);
          const auto got = avg_pool_codes(in, {kernel, std::min<std::int64_t>(kernel, 9)},
                                          {stride, stride}, parallel);
          const auto want =
              torch::avg_pool2d(in.int_repr().to(torch::kFloat),
                                {kernel, std::min<std::int64_t>(kernel, 9)}, {stride, stride})
                  .round();
          EXPECT_TRUE(got.is_contiguous(format));
          EXPECT_EQ(got.q_scale(), x.q_scale());
          EXPECT_TRUE(torch::equal(codes(got), want.to(torch::kInt32)))
              << channels << ": " << kernel << "/" << stride;
        }
  }
}

}  // namespace
}  // namespace qlab::int8
