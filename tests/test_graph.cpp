#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/graph.hpp>

namespace qlab {
namespace {

// LeNet as seed 004 defines it, built by hand.
Graph lenet(Shape input = {1, 32, 32}) {
  Graph g("LeNet");
  auto x = g.input("input", input);
  x = g.conv2d("features.0", x, 1, 6, 5);
  x = g.relu("features.1", x);
  x = g.avg_pool2d("features.2", x, 2, 2);
  x = g.conv2d("features.3", x, 6, 16, 5);
  x = g.relu("features.4", x);
  x = g.avg_pool2d("features.5", x, 2, 2);
  x = g.conv2d("features.6", x, 16, 120, 5);
  x = g.relu("features.7", x);
  x = g.flatten("flatten", x);
  g.functional("flatten");
  x = g.linear("classifier.0", x, 120, 84);
  x = g.relu("classifier.1", x);
  x = g.linear("classifier.2", x, 84, 10);
  g.set_outputs({x});
  return g;
}

// Every op has its row in the op table, in the enum's order, with the facts
// the rest of qlab reads.
TEST(Graph, EveryOpHasItsRowInTheOpTable) {
  for (int i = 0; i <= static_cast<int>(Op::reparameterize); ++i) {
    const Op op = static_cast<Op>(i);
    const OpInfo& info = op_info(op);
    EXPECT_EQ(info.op, op);
    EXPECT_STREQ(to_string(op), info.name);
    EXPECT_NE(info.forward, nullptr) << info.name;
    EXPECT_NE(info.shape, nullptr) << info.name;
    EXPECT_EQ(info.weighted, op == Op::conv2d || op == Op::linear) << info.name;
    EXPECT_EQ(info.layer != nullptr, info.weighted || op == Op::batch_norm2d) << info.name;
  }
  EXPECT_EQ(op_info(Op::relu6).fuses_as, Activation::relu6);
  EXPECT_FALSE(op_info(Op::max_pool2d).own_grid);
  EXPECT_FALSE(op_info(Op::reparameterize).integer_kernel);
}

TEST(Graph, CountsParametersAndMacsByHand) {
  const Graph g = lenet();
  // conv 1->6: 6*1*25+6, conv 6->16: 16*6*25+16, conv 16->120: 120*16*25+120,
  // fc 120->84: 120*84+84, fc 84->10: 84*10+10.
  EXPECT_EQ(g.parameter_count(), 156 + 2416 + 48120 + 10164 + 850);
  // MACs: out_c * in_c * k*k * out_h * out_w for convs, in*out for linears.
  EXPECT_EQ(g.mac_count(), 6 * 25 * 28 * 28 + 16 * 150 * 10 * 10 + 120 * 400 + 120 * 84 + 84 * 10);
}

TEST(Graph, ModuleHasTheSameParametersUnderPyTorchNames) {
  GraphModule m(lenet());
  std::int64_t total = 0;
  for (const auto& p : m->parameters()) total += p.numel();
  EXPECT_EQ(total, lenet().parameter_count());
  auto named = m->named_parameters();
  EXPECT_NE(named.find("features.0.weight"), nullptr);
  EXPECT_NE(named.find("classifier.2.bias"), nullptr);
  EXPECT_EQ(named["features.6.weight"].sizes(), (std::vector<std::int64_t>{120, 16, 5, 5}));
  auto out = m->forward(torch::randn({3, 1, 32, 32}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{3, 10}));
}

TEST(Graph, PrintsLikePyTorch) {
  const std::string expected = R"(LeNet(
  (features): Sequential(
    (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    (1): ReLU()
    (2): AvgPool2d(kernel_size=2, stride=2, padding=0)
    (3): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
    (4): ReLU()
    (5): AvgPool2d(kernel_size=2, stride=2, padding=0)
    (6): Conv2d(16, 120, kernel_size=(5, 5), stride=(1, 1))
    (7): ReLU()
  )
  (classifier): Sequential(
    (0): Linear(in_features=120, out_features=84, bias=True)
    (1): ReLU()
    (2): Linear(in_features=84, out_features=10, bias=True)
  )
))";
  EXPECT_EQ(lenet().print(), expected);
}

TEST(Graph, RejectsShapesThatDoNotFit) {
  // Unpadded 28x28 leaves a 4x4 map for the last 5x5 conv.
  const Graph g = lenet({1, 28, 28});
  try {
    g.stats();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("features.6"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GraphModule{g}, Error);
}

TEST(Graph, RejectsBadWiring) {
  Graph g("Bad");
  auto x = g.input("input", {4});
  EXPECT_THROW(g.linear("fc", "nowhere", 4, 2), Error);
  g.linear("fc", x, 4, 2);
  EXPECT_THROW(g.linear("fc", x, 4, 2), Error);  // duplicate name
  EXPECT_THROW(g.set_outputs({"missing"}), Error);
  g.linear("fc2", x, 5, 2);
  EXPECT_THROW(g.stats(), Error);  // fc2 expects 5 features, gets 4
}

TEST(Graph, MultiInputAndMultiOutputNodes) {
  // A residual block plus two heads, the shapes VAE and MobileNetV2 need.
  Graph g("Residual");
  auto x = g.input("input", {2, 4, 4});
  auto y = g.conv2d("block.conv", x, 2, 2, 3, 1, 1, 1, false);
  y = g.batch_norm2d("block.bn", y, 2);
  auto sum = g.add("block.add", x, y);
  auto flat = g.flatten("flatten", sum);
  auto head_a = g.linear("head_a", flat, 32, 3);
  auto head_b = g.linear("head_b", flat, 32, 5);
  g.set_outputs({head_a, head_b});
  GraphModule m(g);
  m->eval();
  auto out = m->forward(torch::randn({7, 2, 4, 4}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(1), 3);
  EXPECT_EQ(out[1].size(1), 5);
  EXPECT_EQ(g.parameter_count(), 2 * 2 * 9 + 2 * 2 + 32 * 3 + 3 + 32 * 5 + 5);
  EXPECT_NE(g.print().find("(block): Module("), std::string::npos);

  Graph bad("BadAdd");
  auto i = bad.input("input", {2, 4, 4});
  auto c = bad.conv2d("c", i, 2, 3, 1);
  bad.add("add", i, c);
  EXPECT_THROW(bad.stats(), Error);
}

TEST(Graph, SignatureChangesWithArchitecture) {
  EXPECT_EQ(lenet().signature(), lenet().signature());
  EXPECT_NE(lenet().signature(), lenet({3, 32, 32}).signature());
}

}  // namespace
}  // namespace qlab
