#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include <zlib.h>

namespace qlab {
namespace {

using test::TempDir;
using test::write_file;

std::string idx_bytes(std::vector<std::uint32_t> dims, std::uint8_t fill_from = 0,
                      std::int64_t drop = 0) {
  std::string s{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  std::uint64_t n = 1;
  for (auto d : dims) {
    for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>((d >> shift) & 0xff));
    n *= d;
  }
  for (std::uint64_t i = 0; i < n; ++i) s.push_back(static_cast<char>((fill_from + i) % 10));
  s.resize(s.size() - static_cast<std::size_t>(drop));
  return s;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

using test::error_of;

TEST(Idx, ReadsPlainAndGzip) {
  TempDir dir;
  write_file(dir.file("a.idx"), idx_bytes({3, 2, 2}));
  write_gz(dir.file("a.idx.gz"), idx_bytes({3, 2, 2}));
  for (const auto& f : {dir.file("a.idx"), dir.file("a.idx.gz")}) {
    auto t = read_idx(f);
    EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{3, 2, 2}));
    EXPECT_EQ(t.dtype(), torch::kUInt8);
    EXPECT_EQ(t.flatten()[5].item<int>(), 5);
  }
}

TEST(Idx, RejectsCorruptFiles) {
  TempDir dir;
  auto bad_magic = idx_bytes({4});
  bad_magic[0] = 'P';
  write_file(dir.file("magic"), bad_magic);
  EXPECT_NE(error_of([&] {
              read_idx(dir.file("magic"));
            }).find("bytes 0-1 must be 0x00 0x00 (the magic number), found 0x50 0x00"),
            std::string::npos);

  write_file(dir.file("trunc"), idx_bytes({10, 4}, 0, 3));
  auto msg = error_of([&] { read_idx(dir.file("trunc")); });
  EXPECT_NE(msg.find("promises 40 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("trunc")), std::string::npos) << msg;

  // A header that claims 4 billion images must fail before allocating them.
  write_file(dir.file("huge"), idx_bytes({2}).substr(0, 4) + std::string("\xff\xff\xff\xff", 4));
  msg = error_of([&] { read_idx(dir.file("huge")); });
  EXPECT_NE(msg.find("gives dimensions 4294967295: more than the 2147483648 bytes qlab reads"),
            std::string::npos)
      << msg;

  // Found by fuzz_idx: huge dimensions times a zero one hold no data, but
  // LibTorch cannot make a tensor of that shape.
  write_file(dir.file("zero"), idx_bytes({2}).substr(0, 3) +
                                   std::string("\x03\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\0", 13));
  msg = error_of([&] { read_idx(dir.file("zero")); });
  EXPECT_NE(msg.find("gives dimensions 4294967295 x 4294967295 x 0"), std::string::npos) << msg;

  // A gzip bomb: 100 bytes promised, 64 MiB of zeros behind them. It is
  // refused after reading what the header promised plus one byte.
  write_gz(dir.file("bomb.gz"), idx_bytes({100}) + std::string(64 << 20, '\0'));
  msg = error_of([&] { read_idx(dir.file("bomb.gz")); });
  EXPECT_NE(msg.find("promises 100 bytes of data from byte 8, the file holds more"),
            std::string::npos)
      << msg;

  auto gz = idx_bytes({100, 28});
  write_gz(dir.file("cut.gz"), gz);
  std::ifstream in(dir.file("cut.gz"), std::ios::binary);
  std::string packed((std::istreambuf_iterator<char>(in)), {});
  write_file(dir.file("cut.gz"), packed.substr(0, packed.size() / 2));
  EXPECT_THROW(read_idx(dir.file("cut.gz")), Error);

  EXPECT_NE(error_of([&] { read_idx(dir.file("missing")); }).find("no such file"),
            std::string::npos);
}

void write_mnist_like(const TempDir& dir, std::uint32_t n_train, std::uint32_t n_train_labels) {
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({n_train, 28, 28}));
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({n_train_labels}));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_bytes({5, 28, 28}));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({5}, 3));
}

TEST(Datasets, LoadsIdxFolderAndAdaptsToTheModel) {
  TempDir dir;
  write_mnist_like(dir, 20, 20);
  DatasetConfig c{"fashion-mnist", dir.path().string(), 12, 0, "", {}, {}};
  auto d = load_dataset(c, {3, 32, 32});
  EXPECT_EQ(d.train.images.sizes(), (std::vector<std::int64_t>{12, 3, 32, 32}));
  EXPECT_EQ(d.test.images.sizes(), (std::vector<std::int64_t>{5, 3, 32, 32}));
  EXPECT_EQ(d.native_shape, (Shape{1, 28, 28}));
  EXPECT_EQ(d.test.labels[0].item<std::int64_t>(), 3);
  EXPECT_EQ(d.classes, 10);
  // Padding sits at the normalised value of a black pixel, like the images' own zeros.
  EXPECT_TRUE(d.train.images.isfinite().all().item<bool>());
}

TEST(Datasets, ExplicitMeanAndStdNormaliseAsTorchvisionDoes) {
  TempDir dir;
  write_mnist_like(dir, 20, 20);
  DatasetConfig c{"fashion-mnist", dir.path().string(), 0, 0, "", {}, {}};
  const auto pixels = load_dataset(c, {1, 28, 28}, /*normalize=*/false);
  EXPECT_NE(pixels.normalization.find("not normalised"), std::string::npos);
  const auto own = load_dataset(c, {1, 28, 28});
  EXPECT_NE(own.normalization.find("normalised by the training split's mean and std: mean ["),
            std::string::npos)
      << own.normalization;
  c.mean = {0.1307};
  c.std = {0.3081};
  const auto given = load_dataset(c, {1, 28, 28});
  EXPECT_TRUE(
      torch::allclose(given.test.images, (pixels.test.images - 0.1307) / 0.3081, 1e-5, 1e-6));
  EXPECT_NE(given.normalization.find("by [dataset] mean and std: mean [0.1307], std [0.3081]"),
            std::string::npos)
      << given.normalization;
  // One value per channel of the images, or of the model's input.
  c.mean = {0.1, 0.2, 0.3};
  c.std = {1, 1, 1};
  EXPECT_EQ(load_dataset(c, {3, 32, 32}).train.images.size(1), 3);
  const auto msg = error_of([&] { load_dataset(c, {1, 28, 28}); });
  EXPECT_NE(msg.find("[dataset] mean and std have 3 values; fashion-mnist images have 1 channel(s) "
                     "and the model takes 1"),
            std::string::npos)
      << msg;
}

TEST(Datasets, CountsThatDisagreeAreAnError) {
  TempDir dir;
  write_mnist_like(dir, 20, 19);
  DatasetConfig c{"fashion-mnist", dir.path().string(), 0, 0, "", {}, {}};
  auto msg = error_of([&] { load_dataset(c, {1, 28, 28}); });
  EXPECT_NE(msg.find("20 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("19 labels"), std::string::npos) << msg;
}

TEST(Datasets, MissingFilesNameWhereTheyWereLookedFor) {
  TempDir dir;
  DatasetConfig c{"fashion-mnist", dir.path().string(), 0, 0, "", {}, {}};
  auto msg = error_of([&] { load_dataset(c, {1, 28, 28}); });
  EXPECT_NE(msg.find("files not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
  EXPECT_THROW(load_dataset({"imagenet", "", 0, 0, "", {}, {}}, {1, 28, 28}), Error);
  // mnist looks for IDX files, then digits, in the same folder: named once.
  msg = error_of([&] {
    load_dataset({"mnist", dir.path().string(), 0, 0, "", {}, {}}, {1, 28, 28});
  });
  EXPECT_EQ(msg.find(dir.path().string()), msg.rfind(dir.path().string())) << msg;
}

TEST(Datasets, FallbackReplacesOnlyMissingFilesAndSaysSo) {
  TempDir dir, empty;
  write_mnist_like(dir, 20, 20);
  // A missing CIFAR folder falls back to the IDX folder given as QLAB_DATA_DIR.
  DatasetConfig c{"cifar10", empty.path().string(), 0, 0, "", {}, {}};
  c.fallback = "fashion-mnist";
  std::filesystem::create_directories(dir.path() / "fashion-mnist");
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.is_regular_file())
      std::filesystem::copy(e.path(), dir.path() / "fashion-mnist" / e.path().filename());
  setenv("QLAB_DATA_DIR", dir.path().c_str(), 1);
  auto d = load_dataset(c, {3, 32, 32});
  unsetenv("QLAB_DATA_DIR");
  EXPECT_EQ(d.name, "fashion-mnist");
  EXPECT_NE(d.fallback_reason.find("dataset 'cifar10': files not found"), std::string::npos)
      << d.fallback_reason;
  EXPECT_NE(d.fallback_reason.find("used fashion-mnist instead"), std::string::npos)
      << d.fallback_reason;
  EXPECT_EQ(d.train.images.size(1), 3);
  // A corrupt file is an error, never a reason to fall back.
  test::write_file(empty.file("data_batch_1.bin"), "short");
  test::write_file(empty.file("test_batch.bin"), "short");
  EXPECT_THROW(load_dataset(c, {3, 32, 32}), Error);
}

TEST(Digits, SplitsEachClassEightyTwenty) {
  TempDir dir;
  for (int d = 0; d < 10; ++d) {
    std::string data;
    const int n = 10 + d;  // classes of different sizes
    for (int i = 0; i < n * 784; ++i)
      data += (data.empty() ? "" : ",") + std::string(i % 3 ? "0" : "0.5");
    write_file(dir.file(std::to_string(d) + ".json"), "{\"data\": [" + data + "]}");
  }
  auto t = read_digits(dir.path().string());
  std::int64_t train = 0, test = 0;
  for (int d = 0; d < 10; ++d) {
    const int n = 10 + d;
    EXPECT_EQ(t[1].eq(d).sum().item<std::int64_t>(), n * 8 / 10);
    EXPECT_EQ(t[3].eq(d).sum().item<std::int64_t>(), n - n * 8 / 10);
    train += n * 8 / 10;
    test += n - n * 8 / 10;
  }
  EXPECT_EQ(t[0].size(0), train);
  EXPECT_EQ(t[2].size(0), test);
  EXPECT_EQ(t[0].max().item<int>(), 128);  // 0.5 * 255, rounded

  // mnist without IDX files falls back to the digits folder.
  auto d = load_dataset({"mnist", dir.path().string(), 0, 0, "", {}, {}}, {1, 32, 32});
  EXPECT_EQ(d.name, "mnist-digits");
  EXPECT_EQ(d.train.size(), train);
}

TEST(Digits, RejectsMalformedFiles) {
  TempDir dir;
  for (int d = 0; d < 10; ++d)
    write_file(dir.file(std::to_string(d) + ".json"), "{\"data\": [0, 1]}");
  EXPECT_NE(
      error_of([&] { read_digits(dir.path().string()); }).find("not a positive multiple of 784"),
      std::string::npos);
  write_file(dir.file("0.json"), "{\"data\": [0, 1");
  EXPECT_NE(error_of([&] { read_digits(dir.path().string()); }).find("not valid JSON"),
            std::string::npos);
  write_file(dir.file("0.json"), "{\"data\": [" + std::string(783 * 2, ' ') + "]}");
  std::string big = "2";
  for (int i = 1; i < 784; ++i) big += ",0";
  write_file(dir.file("0.json"), "{\"data\": [" + big + "]}");
  EXPECT_NE(error_of([&] { read_digits(dir.path().string()); }).find("outside 0..1"),
            std::string::npos);
}

TEST(Cifar, ReadsRecordsAndRejectsTruncation) {
  TempDir dir;
  std::string records;
  for (int i = 0; i < 4; ++i) {
    records.push_back(static_cast<char>(i));
    records += std::string(3072, static_cast<char>(i * 10));
  }
  write_file(dir.file("b.bin"), records);
  auto [x, y] = read_cifar({dir.file("b.bin")}, 10);
  EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(y[3].item<std::int64_t>(), 3);
  EXPECT_EQ(x[2][1][5][5].item<int>(), 20);

  write_file(dir.file("cut.bin"), records.substr(0, records.size() - 7));
  auto msg = error_of([&] { read_cifar({dir.file("cut.bin")}, 10); });
  EXPECT_NE(msg.find("not a whole number of CIFAR-10 records"), std::string::npos) << msg;

  std::string bad(1 + 3072, '\0');
  bad[0] = static_cast<char>(42);
  write_file(dir.file("label.bin"), bad);
  EXPECT_NE(error_of([&] { read_cifar({dir.file("label.bin")}, 10); }).find("label 42"),
            std::string::npos);
}

TEST(FitImages, PadsCropsAndRepeatsChannels) {
  auto x = torch::ones({2, 1, 28, 28}, torch::kUInt8);
  auto y = fit_images(x, {3, 32, 32});
  EXPECT_EQ(y.sizes(), (std::vector<std::int64_t>{2, 3, 32, 32}));
  EXPECT_EQ(y.sum().item<std::int64_t>(), 2 * 3 * 28 * 28);
  EXPECT_EQ(y[0][2][2][2].item<int>(), 1);
  EXPECT_EQ(y[0][2][1][1].item<int>(), 0);
  EXPECT_EQ(fit_images(y, {3, 28, 28}).sum().item<std::int64_t>(), 2 * 3 * 28 * 28);
  EXPECT_THROW(fit_images(torch::ones({1, 3, 8, 8}, torch::kUInt8), {1, 8, 8}), Error);
}

}  // namespace
}  // namespace qlab
