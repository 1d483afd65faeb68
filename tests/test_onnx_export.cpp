// `qlab export --onnx`: the graph qlab writes, read back with ONNX's own
// protobuf classes. Its numbers are checked against ONNX Runtime in
// tests/onnx/check_onnx.sh.
#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/experiment.hpp>

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace qlab {
namespace {

const char* kLenet = R"(
[model]
name = "lenet"
[dataset]
limit_train = 500
limit_test = 100
[train]
epochs = 1
[backend]
name = "onednn"
)";

struct Exported {
  onnx::ModelProto model;
  std::vector<std::string> notes;
};

Exported export_model(const std::string& toml, const test::TempDir& dir) {
  RunSettings s;
  s.cache_dir = dir.file("cache");
  s.progress = false;
  std::ostringstream log;
  Exported e;
  e.notes = export_onnx(parse_experiment(toml, "test.toml"), test::build_registry(), s,
                        dir.file("m.onnx"), dir.file("ref.safetensors"), log);
  std::ifstream in(dir.file("m.onnx"), std::ios::binary);
  EXPECT_TRUE(e.model.ParseFromIstream(&in));
  return e;
}

std::map<std::string, int> op_counts(const onnx::ModelProto& m) {
  std::map<std::string, int> out;
  for (const auto& n : m.graph().node()) ++out[n.op_type()];
  return out;
}

const onnx::TensorProto* initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

const onnx::NodeProto* producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

std::string metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props())
    if (p.key() == key) return p.value();
  return "";
}

TEST(OnnxExport, AFloatModelIsPlainOpsOnADynamicBatch) {
  test::TempDir dir;
  const auto e = export_model(kLenet, dir);
  auto ops = op_counts(e.model);
  EXPECT_EQ(ops["Conv"], 3);
  EXPECT_EQ(ops["Gemm"], 2);
  EXPECT_EQ(ops["Relu"], 4);
  EXPECT_EQ(ops["AveragePool"], 2);
  EXPECT_EQ(ops.count("QuantizeLinear"), 0u);
  EXPECT_EQ(e.model.opset_import(0).version(), 13);
  const auto& input = e.model.graph().input(0);
  EXPECT_EQ(input.name(), "input");
  EXPECT_EQ(input.type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(input.type().tensor_type().shape().dim(2).dim_value(), 32);
  EXPECT_NE(metadata(e.model, "qlab.input").find("normalised by the training split's mean and std"),
            std::string::npos)
      << metadata(e.model, "qlab.input");
  EXPECT_NE(e.notes.back().find("written to"), std::string::npos) << e.notes.back();
}

TEST(OnnxExport, AStaticModelIsQdqWithInt8WeightsPerChannelAndInt32Biases) {
  test::TempDir dir;
  const auto e = export_model(std::string(kLenet) + "[quantizer]\nname = \"static\"\n", dir);
  auto ops = op_counts(e.model);
  EXPECT_EQ(ops["Conv"], 3);
  EXPECT_EQ(ops["Gemm"], 2);
  // Every activation grid is a pair; weights and biases add a DequantizeLinear
  // each, and so do the two average poolings, which read their input's codes
  // as steps (scale 1) so that a float mean rounds exactly.
  EXPECT_GT(ops["QuantizeLinear"], 5);
  EXPECT_EQ(ops["DequantizeLinear"], ops["QuantizeLinear"] + 2 * 5 + 2);
  for (const auto& n : e.model.graph().node())
    if (n.op_type() == "AveragePool") {
      const auto* steps = producer(e.model, n.input(0));
      ASSERT_TRUE(steps && steps->op_type() == "DequantizeLinear") << n.name();
      const auto* unit = initializer(e.model, steps->input(1));
      ASSERT_TRUE(unit && unit->raw_data().size() == sizeof(float)) << n.name();
      float scale = 0;
      std::memcpy(&scale, unit->raw_data().data(), sizeof scale);
      EXPECT_EQ(scale, 1.0f) << n.name();
    }
  for (const std::string layer :
       {"features.0", "features.3", "features.6", "classifier.0", "classifier.2"}) {
    const auto* w = initializer(e.model, layer + ".weight_quantized");
    const auto* s = initializer(e.model, layer + ".weight_scale");
    const auto* b = initializer(e.model, layer + ".bias_quantized");
    ASSERT_TRUE(w && s && b) << layer;
    EXPECT_EQ(w->data_type(), onnx::TensorProto_DataType_INT8) << layer;
    EXPECT_EQ(b->data_type(), onnx::TensorProto_DataType_INT32) << layer;
    ASSERT_EQ(s->dims_size(), 1) << layer;  // per output channel
    EXPECT_EQ(s->dims(0), w->dims(0)) << layer;
  }
  for (const auto& n : e.model.graph().node()) {
    if (n.op_type() == "QuantizeLinear") {
      EXPECT_EQ(initializer(e.model, n.input(2))->data_type(), onnx::TensorProto_DataType_UINT8)
          << n.name();
    }
  }
}

TEST(OnnxExport, ALowBitGridIsItsUint8CodesClipped) {
  test::TempDir dir;
  const auto e = export_model(std::string(kLenet) +
                                  "[quantizer]\nname = \"static\"\nweight_bits = 4\n"
                                  "activation_bits = 4\n",
                              dir);
  auto ops = op_counts(e.model);
  EXPECT_EQ(ops["Clip"], ops["QuantizeLinear"]);  // one per 4-bit grid
  const auto* w = initializer(e.model, "features.0.weight_quantized");
  ASSERT_TRUE(w);
  const std::string& codes = w->raw_data();
  for (const char c : codes) {
    EXPECT_GE(static_cast<int>(c), -8);
    EXPECT_LE(static_cast<int>(c), 7);
  }
}

TEST(OnnxExport, RefusesWhatQdqCannotExpressWithTheReason) {
  test::TempDir dir;
  const std::string dynamic = test::error_of(
      [&] { export_model(std::string(kLenet) + "[quantizer]\nname = \"dynamic\"\n", dir); });
  EXPECT_NE(dynamic.find("test.toml: cannot export lenet dynamic"), std::string::npos) << dynamic;
  EXPECT_NE(dynamic.find("dynamic quantization does not export to ONNX QDQ"), std::string::npos)
      << dynamic;
  const std::string wide = test::error_of([&] {
    export_model(std::string(kLenet) + "[quantizer]\nname = \"static\"\nweight_bits = 12\n", dir);
  });
  EXPECT_NE(wide.find("runs simulated, not on int8 grids"), std::string::npos) << wide;
}

}  // namespace
}  // namespace qlab
