// The npm digits set: read_digits on a folder whose 0.json is any bytes.
#include "fuzz_support.hpp"

#include <qlab/plugin/data.hpp>

#include <filesystem>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& json = qlab::fuzz::scratch("digits/0.json");
  static const bool made =
      std::filesystem::create_directories(std::filesystem::path(json).parent_path());
  (void)made;
  qlab::fuzz::write(json, data, size);
  const std::string dir = std::filesystem::path(json).parent_path().string();
  return qlab::fuzz::refuse_or_accept([&] { qlab::read_digits(dir); });
}
