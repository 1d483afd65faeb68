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
