// IDX, the format of MNIST and Fashion-MNIST: magic 0x00 0x00 <type> <ndims>,
// ndims big-endian 32-bit sizes, then the data. Only unsigned bytes occur.
#include "data/file_bytes.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab {

torch::Tensor read_idx(const std::string& path) {
  // The header first: it says how much data there must be, and no more than
  // that is ever read, so a lying header or a gzip bomb costs no memory.
  bool more = false;
  const std::string head = read_file_bytes(path, 4 + 4 * 4, &more);
  auto u = [&](std::size_t i) { return static_cast<std::uint8_t>(head[i]); };
  if (head.size() < 4 || u(0) != 0 || u(1) != 0)
    throw Error(
        fmt::format("{}: not an IDX file: bytes 0-1 must be 0x00 0x00 (the magic number){}", path,
                    head.size() < 4 ? fmt::format(", and the file has only {} bytes", head.size())
                                    : fmt::format(", found 0x{:02x} 0x{:02x}", u(0), u(1))));
  if (u(2) != 0x08)
    throw Error(
        fmt::format("{}: byte 2: IDX data type 0x{:02x} is not supported (expected 0x08, "
                    "unsigned bytes)",
                    path, u(2)));
  const std::size_t ndims = u(3);
  if (ndims < 1 || ndims > 4)
    throw Error(
        fmt::format("{}: byte 3: IDX file has {} dimensions (expected 1 to 4)", path, ndims));
  const std::size_t header = 4 + 4 * ndims;
  if (head.size() < header)
    throw Error(fmt::format(
        "{}: truncated IDX header: {} dimensions need bytes 0-{}, the file has {} bytes", path,
        ndims, header - 1, head.size()));
  // `span` multiplies the dimensions that are not zero: a tensor of
  // 4294967295 x 4294967295 x 0 holds nothing, but LibTorch refuses its shape.
  std::vector<std::int64_t> dims;
  std::uint64_t count = 1, span = 1;
  for (std::size_t d = 0; d < ndims; ++d) {
    const std::size_t o = 4 + 4 * d;
    const std::uint64_t n =
        (std::uint64_t{u(o)} << 24) | (u(o + 1) << 16) | (u(o + 2) << 8) | u(o + 3);
    const auto times = [n](std::uint64_t v) {
      return v > (kMaxFileBytes + 1) / n ? kMaxFileBytes + 1 : v * n;
    };
    count = n == 0 ? 0 : times(count);
    span = n == 0 ? span : times(span);
    dims.push_back(static_cast<std::int64_t>(n));
  }
  if (span > kMaxFileBytes - header)
    throw Error(fmt::format(
        "{}: the IDX header (bytes 4-{}) gives dimensions {}: more than the {} bytes qlab reads "
        "from one file (corrupt header?)",
        path, header - 1, fmt::join(dims, " x "), kMaxFileBytes));
  const std::string bytes = read_file_bytes(path, header + count, &more);
  const std::uint64_t have = bytes.size() - header;
  if (more || count != have)
    throw Error(fmt::format(
        "{}: the IDX header (bytes 4-{}) promises {} bytes of data from byte {}, the file "
        "holds {} (truncated or corrupt)",
        path, header - 1, count, header, more ? "more" : std::to_string(have)));
  auto t = torch::empty(dims, torch::kUInt8);
  if (have) std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data() + header, have);
  return t;
}

}  // namespace qlab
