// IDX files (MNIST, Fashion-MNIST): read_idx on any bytes, plain or gzip.
#include "fuzz_support.hpp"

#include <qlab/plugin/data.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = qlab::fuzz::scratch("input.idx");
  qlab::fuzz::write(path, data, size);
  return qlab::fuzz::refuse_or_accept([&] { qlab::read_idx(path); });
}
