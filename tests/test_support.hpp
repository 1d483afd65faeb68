#pragma once
// Helpers shared by the test files: temporary folders and a tiny model.
#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/model.hpp>
#include <qlab/plugin/quantizer.hpp>
#include <qlab/registry.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

namespace qlab::test {

/// This build's plugin folder, the test plugins' folder, tests/golden
/// (test_paths.cpp).
std::string build_plugin_dir();
std::string test_plugin_dir();
std::string golden_dir();

/// A fresh folder under the system's temp folder, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("qlab-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

/// The in-tree plugins of this build, loaded once.
inline const Registry& build_registry() {
  static const Registry r = [] {
    Registry reg;
    reg.load_dir(build_plugin_dir());
    return reg;
  }();
  return r;
}

/// The message of the qlab::Error `fn` throws; a test failure if none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no qlab::Error thrown";
  return "";
}

/// A small conv net on 1x8x8 inputs with 3 classes, for fast trainer tests.
class TinyModel : public Model {
 public:
  TrainRecipe default_recipe() const override {
    TrainRecipe r;
    r.lr = 0.1;
    r.momentum = 0.9;
    r.epochs = 2;
    r.batch_size = 16;
    return r;
  }
  Shape input_shape(const Shape&, const Options&) const override { return {1, 8, 8}; }
  Graph build(const Options&, const DataInfo& data) const override {
    Graph g("Tiny");
    auto x = g.input("input", data.input);
    x = g.conv2d("features.0", x, 1, 4, 3, 1, 1);
    x = g.relu("features.1", x);
    x = g.max_pool2d("features.2", x, 2, 2);
    x = g.flatten("flatten", x);
    x = g.dropout("classifier.0", x, 0.1);
    x = g.linear("classifier.1", x, 4 * 4 * 4, data.classes);
    g.set_outputs({x});
    return g;
  }
};

/// 3 classes told apart by which third of the image is bright.
inline Dataset tiny_dataset(std::int64_t n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto labels = torch::randint(3, {n}, gen, torch::kInt64);
  auto images = torch::randn({n, 1, 8, 8}, gen) * 0.3;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto c = labels[i].item<std::int64_t>();
    images[i].slice(1, c * 2, c * 2 + 3) += 1.0;
  }
  return {images, labels};
}

/// What a quantizer needs to fine-tune `model` on `data`, quietly.
inline QuantizeContext training_context(const Model& model, const Dataset& data) {
  QuantizeContext ctx;
  ctx.calibration = &data;
  ctx.batch_size = 16;
  ctx.model = &model;
  ctx.recipe = model.default_recipe();
  ctx.training.progress = false;
  return ctx;
}

}  // namespace qlab::test
