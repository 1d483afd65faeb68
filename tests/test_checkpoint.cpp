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
  save_checkpoint(dir.file("c.pt"), a, {{"model", "tiny"}});
  GraphModule b(tiny_graph());
  const auto meta = load_checkpoint(dir.file("c.pt"), b);
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
  // std::runtime_error (others made it segfault). qlab's own format refuses
  // it at its first bytes.
  const std::string path =
      test::golden_dir() + "/../fuzz/corpus/checkpoint/regression_bad_torchscript.pt";
  GraphModule m(tiny_graph());
  const std::string msg = test::error_of([&] { load_checkpoint(path, m); });
  EXPECT_NE(
      msg.find(
          "regression_bad_torchscript.pt: not a qlab checkpoint (bytes 0-7 are not \"QLABTNS1\")"),
      std::string::npos)
      << msg;
}

TEST(Checkpoint, SizesInTheHeaderAreCheckedAgainstTheFile) {
  test::TempDir dir;
  const auto file = [&](const std::string& header) {
    std::string out = "QLABTNS1";
    for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    test::write_file(dir.file("h.pt"), out + header + std::string(16, '\0'));
    GraphModule m(tiny_graph());
    return test::error_of([&] { load_checkpoint(dir.file("h.pt"), m); });
  };
  EXPECT_NE(
      file(
          R"({"tensors": {"w": {"dtype": "float32", "shape": [1099511627776], "offset": 0, "bytes": 16}}})")
          .find("tensor 'w': a dimension is not a size the file can hold"),
      std::string::npos);
  EXPECT_NE(
      file(R"({"tensors": {"w": {"dtype": "float32", "shape": [4], "offset": 8, "bytes": 16}}})")
          .find("lie past the end of the file (truncated?)"),
      std::string::npos);
  EXPECT_NE(
      file(R"({"tensors": {"w": {"dtype": "complex", "shape": [4], "offset": 0, "bytes": 16}}})")
          .find("tensor 'w': unknown dtype \"complex\""),
      std::string::npos);
  EXPECT_NE(file(R"({"meta": {}, "tensors": {}})").find("not a float checkpoint"),
            std::string::npos);
}

TEST(Checkpoint, RefusesAnotherArchitecture) {
  test::TempDir dir;
  GraphModule a(tiny_graph(3));
  save_checkpoint(dir.file("c.pt"), a, {{"model", "tiny"}});
  GraphModule b(tiny_graph(5));
  try {
    load_checkpoint(dir.file("c.pt"), b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another architecture"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, RefusesTruncatedCorruptAndMissingFiles) {
  test::TempDir dir;
  GraphModule a(tiny_graph());
  save_checkpoint(dir.file("c.pt"), a, {});
  std::ifstream in(dir.file("c.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  test::write_file(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  test::write_file(dir.file("junk.pt"), "this is not a checkpoint");
  for (const auto* name : {"cut.pt", "junk.pt", "missing.pt"}) {
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
