// NNI-style config lists: parsing, matching, precedence, and errors.
#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/quant/config_list.hpp>
#include <qlab/quant/ptq.hpp>

#include <gtest/gtest.h>

namespace qlab {
namespace {

using test::error_of;

Graph three_layers() {
  Graph g("Net");
  auto x = g.input("input", {1, 8, 8});
  x = g.conv2d("conv1", x, 1, 4, 3);
  x = g.relu("relu1", x);
  x = g.flatten("flat", x);
  x = g.linear("fc1", x, 4 * 6 * 6, 16);
  x = g.relu("relu2", x);
  g.linear("fc2", x, 16, 3);
  return g;
}

std::vector<ConfigEntry> parse(const std::string& json, const ConfigRules& rules = {}) {
  return parse_config_list(nlohmann::json::parse(json), "[quantizer] config", rules);
}

TEST(ConfigList, LaterEntriesOverrideEarlierOnes) {
  const auto entries = parse(R"([
    {"op_types": ["Conv2d", "linear"], "quant_types": ["weight", "input", "output"], "quant_bits": 8},
    {"op_names": ["fc2"], "quant_types": ["weight"], "quant_bits": {"weight": 4}},
    {"op_names": ["conv1"], "exclude": true}])");
  const auto s = select_layers(three_layers(), entries, "[quantizer] config", {});
  EXPECT_EQ(s.layers.at("fc1"), (LayerBits{8, 8, 8}));
  EXPECT_EQ(s.layers.at("fc2"), (LayerBits{4, 0, 0}));  // replaced, not merged
  ASSERT_EQ(s.float_layers.count("conv1"), 1u);
  EXPECT_EQ(s.float_layers.at("conv1"), "excluded by config entry 3");
}

TEST(ConfigList, UnmatchedLayersStayFloatAndAreListed) {
  const auto s = select_layers(
      three_layers(),
      parse(R"([{"op_types": ["linear"], "quant_types": ["weight"], "quant_bits": 2}])"),
      "[quantizer] config", {});
  EXPECT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.float_layers.at("conv1"), "matched by no config entry");
}

TEST(ConfigList, OpTypesAndOpNamesMustBothMatch) {
  const auto s = select_layers(
      three_layers(),
      parse(
          R"([{"op_types": ["conv2d"], "op_names": ["conv1", "fc1"], "quant_types": ["weight"], "quant_bits": 8}])"),
      "[quantizer] config", {});
  EXPECT_EQ(s.layers.size(), 1u);
  EXPECT_EQ(s.layers.count("conv1"), 1u);
}

TEST(ConfigList, DefaultListQuantizesEveryLayerItAllows) {
  ConfigRules linear_only;
  linear_only.op_types = {Op::linear};
  linear_only.quant_types = {"weight", "input"};
  linear_only.op_types_reason = "no conv kernels";
  const auto s = select_layers(three_layers(), default_config_list(linear_only, {8, 8, 8}),
                               "[quantizer] config", linear_only);
  EXPECT_EQ(s.layers.at("fc1"), (LayerBits{8, 8, 0}));  // no output type under these rules
  EXPECT_EQ(s.float_layers.at("conv1"), "no conv kernels");
}

TEST(ConfigList, ErrorsNameTheEntryAndField) {
  EXPECT_NE(error_of([] {
              parse(R"([{"quant_types": ["weight"], "quant_bits": 8}])");
            }).find("[quantizer] config[1]: an entry needs op_types or op_names"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"([{"op_types": ["lstm"], "quant_types": ["weight"], "quant_bits": 8}])");
            }).find("unknown op type 'lstm'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"([{"op_types": ["linear"], "quant_types": ["bias"], "quant_bits": 8}])");
            }).find("quant_types: 'bias' is not one of"),
            std::string::npos);
  EXPECT_NE(
      error_of([] {
        parse(
            R"([{"op_types": ["linear"], "quant_types": ["weight", "input"], "quant_bits": {"weight": 8}}])");
      }).find("quant_bits: no bits for 'input'"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"([{"op_types": ["linear"], "quant_types": ["weight"], "quant_bits": 40}])");
            }).find("quant_bits: 40 bits is out of range"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"([{"op_types": ["linear"], "quant_type": ["weight"]}])");
            }).find("unknown key 'quant_type'"),
            std::string::npos);
  ConfigRules linear_only;
  linear_only.op_types = {Op::linear};
  linear_only.op_types_reason = "no conv kernels";
  EXPECT_NE(error_of([&] {
              parse(R"([{"op_types": ["conv2d"], "quant_types": ["weight"], "quant_bits": 8}])",
                    linear_only);
            }).find("cannot quantize conv2d layers: no conv kernels"),
            std::string::npos);
  const auto typo = parse(R"([{"op_names": ["fc9"], "exclude": true}])");
  EXPECT_NE(error_of([&] {
              select_layers(three_layers(), typo, "[quantizer] config", {});
            }).find("config[1] op_names: no layer this quantizer can quantize is named 'fc9'"),
            std::string::npos);
}

TEST(ConfigList, TomlArrayOfTablesReachesTheQuantizer) {
  const auto ex = parse_experiment(R"(
[quantizer]
name = "static"
[[quantizer.config]]
op_types = ["conv2d", "linear"]
quant_types = ["weight", "input", "output"]
quant_bits = { weight = 4, input = 8, output = 8 }
[[quantizer.config]]
op_names = ["fc2"]
exclude = true
)",
                                   "exp.toml");
  const auto& v = ex.quantizer.values.at("config");
  const auto* list = std::get_if<TableList>(&v.value);
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->entries.size(), 2u);
  EXPECT_EQ(v.where.line, 4);  // the first [[quantizer.config]]
  const auto entries = parse_config_list(list->entries, "[quantizer] config", {});
  EXPECT_EQ(entries[0].bits, (LayerBits{4, 8, 8}));
  EXPECT_TRUE(entries[1].exclude);
}

TEST(ConfigList, ExperimentsSurviveATomlRoundTrip) {
  // How `qlab sweep --isolate` hands a point to its child process. A name
  // that starts with a newline is what multi-line TOML strings lose.
  const auto ex = parse_experiment(R"(
[model]
name = "lenet"
[train]
lr = 0.5
epochs = 2
[quantizer]
name = "lsq"
config = [{ op_types = ["linear"], quant_types = ["weight"], quant_bits = { weight = 4 } },
          { op_names = ["\nfc1", "a\nb"], exclude = true }]
[metrics]
names = ["accuracy", "size"]
)",
                                   "exp.toml");
  const auto back = parse_experiment(to_toml(ex), "back.toml");
  for (const auto& pair :
       {std::make_pair(&ex.model, &back.model), std::make_pair(&ex.train, &back.train),
        std::make_pair(&ex.quantizer, &back.quantizer),
        std::make_pair(&ex.metrics, &back.metrics)}) {
    ASSERT_EQ(pair.first->values.size(), pair.second->values.size()) << pair.first->name;
    for (const auto& [k, v] : pair.first->values)
      EXPECT_EQ(v.value, pair.second->values.at(k).value) << k;
  }
}

TEST(ConfigList, StaticQuantizationFollowsTheList) {
  auto m = GraphModule(three_layers());
  PtqSpec spec;
  spec.calibration_batches = 1;
  spec.config = parse(R"([
    {"op_types": ["conv2d", "linear"], "quant_types": ["weight", "input", "output"], "quant_bits": 8},
    {"op_names": ["fc2"], "exclude": true}])");
  const Dataset data{torch::randn({64, 1, 8, 8}), torch::zeros({64}, torch::kInt64)};
  const auto q = post_training_quantize(m, spec, data);
  EXPECT_EQ(q.layers.count("fc2"), 0u);
  EXPECT_EQ(q.float_layers.count("fc2"), 1u);
  EXPECT_EQ(q.activations.count("conv1"), 1u);
  EXPECT_EQ(q.activations.count("input"), 1u);
  EXPECT_TRUE(q.int8());  // fc2 runs in float between quantize and dequantize
  spec.config =
      parse(R"([{"op_types": ["conv2d", "linear"], "quant_types": ["weight"], "quant_bits": 8}])");
  const auto weights_only = post_training_quantize(m, spec, data);
  EXPECT_TRUE(weights_only.activations.empty());
  EXPECT_FALSE(weights_only.int8());  // int8 kernels need quantized activations
}

}  // namespace
}  // namespace qlab
