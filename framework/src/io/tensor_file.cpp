#include "io/tensor_file.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <limits>

namespace qlab {
namespace {

constexpr char kMagic[8] = {'Q', 'L', 'A', 'B', 'T', 'N', 'S', '1'};

const std::map<std::string, torch::ScalarType>& dtypes() {
  static const std::map<std::string, torch::ScalarType> m{
      {"float32", torch::kFloat32}, {"float64", torch::kFloat64}, {"int64", torch::kInt64},
      {"int32", torch::kInt32},     {"int8", torch::kInt8},       {"uint8", torch::kUInt8}};
  return m;
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : dtypes())
    if (type == t) return name;
  throw Error(fmt::format("tensor files hold no {} tensors", c10::toString(t)));
}

}  // namespace

std::string tensor_file_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const nlohmann::json& meta) {
  nlohmann::json index = nlohmann::json::object();
  std::string payload;
  for (const auto& [name, t] : tensors) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const auto bytes = static_cast<std::size_t>(c.numel()) * c.element_size();
    index[name] = {{"dtype", dtype_name(c.scalar_type())},
                   {"shape", c.sizes().vec()},
                   {"offset", payload.size()},
                   {"bytes", bytes}};
    payload.append(static_cast<const char*>(c.data_ptr()), bytes);
  }
  const std::string header = nlohmann::json{{"meta", meta}, {"tensors", index}}.dump();
  std::string out(kMagic, sizeof kMagic);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + payload;
}

TensorFile read_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: no such checkpoint", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw Error(fmt::format("{}: not a qlab checkpoint (bytes 0-7 are not \"QLABTNS1\")", path));
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= std::uint64_t{static_cast<unsigned char>(bytes[8 + i])} << (8 * i);
  if (n > bytes.size() - 16)
    throw Error(fmt::format(
        "{}: bytes 8-15 give a header of {} bytes, the file has {} after them (truncated?)", path,
        n, bytes.size() - 16));
  const auto header =
      nlohmann::json::parse(bytes.begin() + 16, bytes.begin() + 16 + static_cast<std::ptrdiff_t>(n),
                            nullptr, /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("tensors") || !header["tensors"].is_object())
    throw Error(
        fmt::format("{}: the header (bytes 16-{}) is not a qlab tensor index", path, 15 + n));
  const std::uint64_t start = 16 + n, payload = bytes.size() - start;
  TensorFile file;
  file.meta = header.value("meta", nlohmann::json::object());
  for (const auto& entry : header["tensors"].items()) {
    const std::string& name = entry.key();
    const nlohmann::json& e = entry.value();
    const auto bad = [&](const std::string& why) {
      return Error(fmt::format("{}: tensor '{}': {}", path, name, why));
    };
    if (!e.is_object() || !e.contains("dtype") || !e["dtype"].is_string() || !e.contains("shape") ||
        !e["shape"].is_array() || !e.contains("offset") || !e["offset"].is_number_unsigned() ||
        !e.contains("bytes") || !e["bytes"].is_number_unsigned())
      throw bad("needs dtype, shape, offset and bytes");
    const auto type = dtypes().find(e["dtype"].get<std::string>());
    if (type == dtypes().end()) throw bad(fmt::format("unknown dtype {}", e["dtype"].dump()));
    std::vector<std::int64_t> shape;
    std::uint64_t count = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > payload)
        throw bad("a dimension is not a size the file can hold");
      shape.push_back(d.get<std::int64_t>());
      count = count > payload ? count : count * d.get<std::uint64_t>();
    }
    const std::uint64_t size = e["bytes"].get<std::uint64_t>(),
                        offset = e["offset"].get<std::uint64_t>();
    const auto item = static_cast<std::uint64_t>(c10::elementSize(type->second));
    if (count > payload || count * item != size)
      throw bad(fmt::format("its shape does not make {} bytes", size));
    if (offset > payload || size > payload - offset)
      throw bad(fmt::format("bytes {}-{} lie past the end of the file (truncated?)", start + offset,
                            start + offset + size));
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type->second));
    if (size) std::memcpy(t.data_ptr(), bytes.data() + start + offset, size);
    file.tensors[name] = t;
  }
  return file;
}

}  // namespace qlab
