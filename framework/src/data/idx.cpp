// IDX, the format of MNIST and Fashion-MNIST: magic 0x00 0x00 <type> <ndims>,
// ndims big-endian 32-bit sizes, then the data. Only unsigned bytes occur.
#include "file_bytes.hpp"

#include <qlab/data.hpp>
#include <qlab/error.hpp>

#include <fmt/format.h>

namespace qlab {

torch::Tensor read_idx(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  auto u = [&](std::size_t i) { return static_cast<std::uint8_t>(bytes[i]); };
  if (bytes.size() < 4 || u(0) != 0 || u(1) != 0)
    throw Error(fmt::format("{}: not an IDX file (bad magic number)", path));
  if (u(2) != 0x08)
    throw Error(fmt::format("{}: IDX data type 0x{:02x} is not supported (expected 0x08, "
                            "unsigned bytes)", path, u(2)));
  const std::size_t ndims = u(3);
  if (ndims < 1 || ndims > 4)
    throw Error(fmt::format("{}: IDX file has {} dimensions (expected 1 to 4)", path, ndims));
  const std::size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) throw Error(fmt::format("{}: truncated IDX header", path));
  std::vector<std::int64_t> dims;
  std::uint64_t count = 1;
  for (std::size_t d = 0; d < ndims; ++d) {
    const std::size_t o = 4 + 4 * d;
    const std::uint64_t n = (std::uint64_t{u(o)} << 24) | (u(o + 1) << 16) | (u(o + 2) << 8) | u(o + 3);
    count *= n;
    if (count > bytes.size()) break;  // also stops overflow: the file is the bound
    dims.push_back(static_cast<std::int64_t>(n));
  }
  const std::uint64_t have = bytes.size() - header;
  if (dims.size() != ndims || count != have)
    throw Error(fmt::format("{}: IDX header promises {} bytes of data, the file holds {} "
                            "(truncated or corrupt)", path,
                            dims.size() != ndims ? std::string("more than the file's") : std::to_string(count),
                            have));
  auto t = torch::empty(dims, torch::kUInt8);
  std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data() + header, have);
  return t;
}

}  // namespace qlab
