// CIFAR binary batches: read_cifar on any bytes, as CIFAR-10 and CIFAR-100.
#include "fuzz_support.hpp"

#include <qlab/plugin/data.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = qlab::fuzz::scratch("batch.bin");
  qlab::fuzz::write(path, data, size);
  const int classes = size > 0 && data[0] % 2 ? 100 : 10;
  return qlab::fuzz::refuse_or_accept([&] { qlab::read_cifar({path}, classes); });
}
