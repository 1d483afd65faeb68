// CIFAR binary format: records of <label byte(s)><3072 bytes, planar RGB>.
// CIFAR-10 has one label byte; CIFAR-100 a coarse and a fine label byte.
#include "data/file_bytes.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include <fmt/format.h>

namespace qlab {

std::pair<torch::Tensor, torch::Tensor> read_cifar(const std::vector<std::string>& files,
                                                   int classes) {
  QLAB_CHECK(classes == 10 || classes == 100, "CIFAR has 10 or 100 classes");
  constexpr std::size_t kImage = 3 * 32 * 32;
  const std::size_t label_bytes = classes == 10 ? 1 : 2;
  const std::size_t record = label_bytes + kImage;
  std::vector<torch::Tensor> xs, ys;
  for (const auto& path : files) {
    const std::string bytes = read_file_bytes(path);
    if (bytes.empty() || bytes.size() % record != 0)
      throw Error(
          fmt::format("{}: {} bytes is not a whole number of CIFAR-{} records of {} bytes "
                      "(truncated or wrong file)",
                      path, bytes.size(), classes, record));
    const auto n = static_cast<std::int64_t>(bytes.size() / record);
    auto x = torch::empty({n, 3, 32, 32}, torch::kUInt8);
    auto y = torch::empty({n}, torch::kInt64);
    auto* px = x.data_ptr<std::uint8_t>();
    auto* py = y.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      const char* r = bytes.data() + static_cast<std::size_t>(i) * record;
      const auto label = static_cast<std::uint8_t>(r[label_bytes - 1]);
      if (label >= classes)
        throw Error(fmt::format("{}: byte {} (record {}): label {}, but CIFAR-{} has {} classes",
                                path, static_cast<std::size_t>(i) * record + label_bytes - 1, i,
                                label, classes, classes));
      py[i] = label;
      std::memcpy(px + static_cast<std::size_t>(i) * kImage, r + label_bytes, kImage);
    }
    xs.push_back(x);
    ys.push_back(y);
  }
  return {torch::cat(xs), torch::cat(ys)};
}

}  // namespace qlab
