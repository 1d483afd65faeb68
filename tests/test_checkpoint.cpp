#include "fuzz/tiny_conv_graph.hpp"
#include "test_support.hpp"

#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>

namespace qlab {
namespace {

Graph tiny_graph(std::int64_t classes = 3) {
  return test::TinyModel().build({}, {"tiny", {1, 8, 8}, classes});
}

TEST(Checkpoint, RoundTripsExactly) {
  test::TempDir dir;
  GraphModule a(tiny_graph());
  save_checkpoint(dir.file("c.safetensors"), a, {{"model", "tiny"}});
  GraphModule b(tiny_graph());
  const auto meta = load_checkpoint(dir.file("c.safetensors"), b);
  EXPECT_EQ(meta["model"], "tiny");
  a->eval();
  b->eval();
  auto x = torch::randn({4, 1, 8, 8});
  EXPECT_TRUE(torch::equal(a->forward(x)[0], b->forward(x)[0]));
  // The write went through a temporary file that is gone.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Checkpoint, ALibTorchArchiveIsNeverParsed) {
  // Found by fuzz_checkpoint when checkpoints were LibTorch archives: this
  // corrupt one made LibTorch's TorchScript importer throw a plain
  // std::runtime_error (others made it segfault). A zip's first 8 bytes
  // read as a safetensors header length far past the file's end.
  const std::string path =
      test::golden_dir() + "/../fuzz/corpus/checkpoint/regression_bad_torchscript.pt";
  GraphModule m(tiny_graph());
  const std::string msg = test::error_of([&] { load_checkpoint(path, m); });
  EXPECT_NE(msg.find("regression_bad_torchscript.pt: bytes 0-7 give a header of"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("not a safetensors file?"), std::string::npos) << msg;
}

TEST(Checkpoint, SizesAndOffsetsInTheHeaderAreCheckedAgainstTheFile) {
  test::TempDir dir;
  const auto file = [&](const std::string& header) {
    std::string out;
    for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    test::write_file(dir.file("h.safetensors"), out + header + std::string(16, '\0'));
    GraphModule m(tiny_graph());
    return test::error_of([&] { load_checkpoint(dir.file("h.safetensors"), m); });
  };
  const auto expect = [&](const std::string& header, const std::string& message) {
    const std::string msg = file(header);
    EXPECT_NE(msg.find(message), std::string::npos) << msg;
  };
  expect(R"({"w": {"dtype": "F32", "shape": [1099511627776], "data_offsets": [0, 16]}})",
         "tensor 'w': a dimension is not a size the file can hold");
  expect(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
         "data_offsets [8, 24] lie outside the 16 data bytes (truncated?)");
  expect(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})",
         "shape [3] of F32 does not make the 16 bytes its data_offsets give");
  expect(R"({"w": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}})",
         "tensor 'w': dtype C64 is not one qlab reads");
  expect(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
         "tensors 'a' and 'b' overlap (data bytes 8-16)");
  expect(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
         "data bytes 8-16 belong to no tensor");
  expect(R"([1, 2])", "is not a JSON object");
  expect(
      R"({"__metadata__": {"qlab": "{}"}, "w": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})",
      "not a float checkpoint");
}

TEST(Checkpoint, RefusesAnotherArchitecture) {
  test::TempDir dir;
  GraphModule a(tiny_graph(3));
  save_checkpoint(dir.file("c.safetensors"), a, {{"model", "tiny"}});
  GraphModule b(tiny_graph(5));
  try {
    load_checkpoint(dir.file("c.safetensors"), b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another architecture"), std::string::npos) << e.what();
  }
}

// A safetensors file of `tensors` as float64, written here, not by qlab.
std::string float64_safetensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    const auto c = t.detach().to(torch::kFloat64).contiguous();
    const std::size_t bytes = c.numel() * 8;
    header[name] = {{"dtype", "F64"},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + bytes}}};
    data.append(static_cast<const char*>(c.data_ptr()), bytes);
  }
  const std::string text = header.dump();
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text + data;
}

TEST(FloatWeights, LoadsAStateDictUnderPyTorchsNamesAndSaysWhatItConverted) {
  test::TempDir dir;
  GraphModule a(tiny_graph());
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& p : a->named_parameters()) state.emplace_back(p.key(), p.value());
  test::write_file(dir.file("w.safetensors"), float64_safetensors(state));
  GraphModule b(tiny_graph());
  const auto notes = load_float_weights(dir.file("w.safetensors"), b);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("4 tensors"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("converted from Double to Float: classifier.1.bias"), std::string::npos)
      << notes[1];
  a->eval();
  b->eval();
  const auto x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::allclose(a->forward(x)[0], b->forward(x)[0], 1e-6, 1e-6));
  // qlab's own checkpoints are such files too.
  save_checkpoint(dir.file("c.safetensors"), a, {{"model", "tiny"}});
  GraphModule c(tiny_graph());
  EXPECT_EQ(load_float_weights(dir.file("c.safetensors"), c).size(), 1u);
  c->eval();
  EXPECT_TRUE(torch::equal(a->forward(x)[0], c->forward(x)[0]));
}

TEST(FloatWeights, ListsEveryMissingUnexpectedAndMismatchedKeyInOneError) {
  test::TempDir dir;
  GraphModule other(tiny_graph(5));
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& p : other->named_parameters())
    if (p.key() != "features.0.bias") state.emplace_back(p.key(), p.value());
  state.emplace_back("features.9.weight", torch::zeros({2}));
  test::write_file(dir.file("w.safetensors"), float64_safetensors(state));
  GraphModule m(tiny_graph(3));
  const std::string msg = test::error_of([&] { load_float_weights(dir.file("w.safetensors"), m); });
  EXPECT_NE(msg.find("w.safetensors: the weights do not fit graph Tiny"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing key(s): features.0.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected key(s): features.9.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mismatch for classifier.1.bias: [5] in the file, [3] in the model"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("mismatch for classifier.1.weight: [5, 64] in the file, [3, 64] in the model"),
            std::string::npos)
      << msg;
}

// Files written by PyTorch's own torch.save (tests/fuzz/make_torch_save_seeds.py).
std::string torch_save_file(const std::string& name) {
  return std::string(QLAB_TESTS_DIR) + "/fuzz/corpus/torch_save/" + name;
}
std::string malformed_weights(const std::string& name) {
  return std::string(QLAB_TESTS_DIR) + "/malformed/weights/" + name;
}

// The seeds' values: each parameter arange(n) / 1000 + k, k counting them.
torch::Tensor seed_values(const torch::Tensor& like, int k) {
  return (torch::arange(like.numel(), torch::kFloat32) / 1000 + k).reshape(like.sizes());
}

TEST(TorchSave, LoadsAStateDictAsPyTorchSavedItWithoutRunningItsPickle) {
  GraphModule m(fuzz::tiny_conv_graph());
  const auto notes = load_float_weights(torch_save_file("fuzz_graph.pt"), m);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("(4 tensors), not trained"), std::string::npos) << notes[0];
  int k = 0;
  for (const auto& p : m->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), seed_values(p.value(), k++))) << p.key();
}

TEST(TorchSave, ReadsParametersStridedViewsAndOtherWidths) {
  GraphModule m(fuzz::tiny_conv_graph());
  const auto notes = load_float_weights(torch_save_file("views_params.pt"), m);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[1].find("converted from Double to Float: features.0.bias"), std::string::npos)
      << notes[1];
  const auto params = m->named_parameters();
  EXPECT_TRUE(
      torch::equal(params["features.0.weight"], seed_values(params["features.0.weight"], 0)));
  EXPECT_TRUE(torch::equal(params["features.0.bias"], seed_values(params["features.0.bias"], 1)));
  // A transposed view that starts 6 elements into a longer storage.
  const auto storage = torch::arange(3 * 4 * 8 * 8 + 6, torch::kFloat32) / 1000 + 3;
  EXPECT_TRUE(torch::equal(params["classifier.weight"],
                           storage.slice(0, 6).reshape({4 * 8 * 8, 3}).t().contiguous()));
}

TEST(TorchSave, RefusesCodeBombsAndBrokenFilesByName) {
  GraphModule m(fuzz::tiny_conv_graph());
  const auto error_for = [&](const std::string& path) {
    return test::error_of([&] { load_float_weights(path, m); });
  };
  const std::vector<std::pair<std::string, std::string>> cases{
      {"whole_module.pt", "the pickle names the global __main__.Fuzz; qlab reads a state_dict's"},
      {"zip_bomb.pt", "record archive/data.pkl claims 40000006 bytes from"},
      {"missing_storage.pt", "no record fuzz_graph/data/0 in the zip"},
      {"legacy.pt", "torch.save's legacy format (before PyTorch 1.6)"}};
  for (const auto& [file, text] : cases) {
    const std::string msg = error_for(malformed_weights(file));
    EXPECT_NE(msg.find(malformed_weights(file) + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(text), std::string::npos) << file << ": " << msg;
  }
  test::TempDir dir;
  std::ifstream in(torch_save_file("fuzz_graph.pt"), std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), {});
  for (const std::size_t keep : {std::size_t{3}, std::size_t{100}, good.size() - 30}) {
    test::write_file(dir.file("cut.pt"), "PK" + good.substr(2, keep));
    EXPECT_NE(error_for(dir.file("cut.pt")).find("cut.pt: not a readable zip"), std::string::npos)
        << keep << ": " << error_for(dir.file("cut.pt"));
  }
}

TEST(Checkpoint, RefusesTruncatedCorruptAndMissingFiles) {
  test::TempDir dir;
  GraphModule a(tiny_graph());
  save_checkpoint(dir.file("c.safetensors"), a, {});
  std::ifstream in(dir.file("c.safetensors"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  test::write_file(dir.file("cut.safetensors"), bytes.substr(0, bytes.size() / 2));
  test::write_file(dir.file("junk.pt"), "this is not a checkpoint");
  for (const auto* name : {"cut.safetensors", "junk.pt", "missing.pt"}) {
    GraphModule b(tiny_graph());
    try {
      load_checkpoint(dir.file(name), b);
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir.file(name)), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace qlab
