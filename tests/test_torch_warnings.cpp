// LibTorch's deprecation of the quantized dtypes, which qlab's int8 backends
// take internally, stays out of the output; other warnings pass.
#include <qlab/torch_warnings.hpp>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

namespace qlab {
namespace {

TEST(TorchWarnings, QuantizedDtypeDeprecationsAreKeptOut) {
  const auto before = quieted_torch_warnings();
  TORCH_WARN("torch.quint8 is deprecated and will be removed in a future release");
  TORCH_WARN("Quantized tensors are DEPRECATED; see torchao");
  EXPECT_EQ(quieted_torch_warnings(), before + 2);
  TORCH_WARN("this warning of the TorchWarnings test is expected to print");
  TORCH_WARN("torch.foo is deprecated (this one prints too)");
  EXPECT_EQ(quieted_torch_warnings(), before + 2);
}

}  // namespace
}  // namespace qlab
