#include "io/safetensors.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <tuple>

namespace qlab {
namespace {

// The format's names for the dtypes LibTorch has.
const std::vector<std::pair<std::string, torch::ScalarType>>& dtypes() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> m{
      {"F64", torch::kFloat64},   {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
      {"I16", torch::kInt16},     {"I8", torch::kInt8},     {"U8", torch::kUInt8},
      {"BOOL", torch::kBool}};
  return m;
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : dtypes())
    if (type == t) return name;
  throw Error(fmt::format("safetensors files hold no {} tensors", c10::toString(t)));
}

// Header lengths past this are refused before anything is allocated, as the
// reference implementation does.
constexpr std::uint64_t kMaxHeader = 100'000'000;

}  // namespace

std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const nlohmann::json& meta) {
  nlohmann::json header = nlohmann::json::object();
  if (!meta.is_null()) header["__metadata__"] = {{"qlab", meta.dump()}};
  std::string payload;
  for (const auto& [name, t] : tensors) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const auto bytes = static_cast<std::size_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {payload.size(), payload.size() + bytes}}};
    payload.append(static_cast<const char*>(c.data_ptr()), bytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out;
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text + payload;
}

TensorFile parse_safetensors(const std::string& bytes, const std::string& path) {
  if (bytes.size() < 8)
    throw Error(fmt::format("{}: {} bytes, too short for a safetensors file (8-byte header length)",
                            path, bytes.size()));
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  if (n > bytes.size() - 8 || n > kMaxHeader)
    throw Error(fmt::format(
        "{}: bytes 0-7 give a header of {} bytes, the file has {} after them (truncated, or not "
        "a safetensors file?)",
        path, n, bytes.size() - 8));
  const auto begin = bytes.begin() + 8;
  const auto header = nlohmann::json::parse(begin, begin + static_cast<std::ptrdiff_t>(n), nullptr,
                                            /*allow_exceptions=*/false);
  if (!header.is_object())
    throw Error(fmt::format("{}: the header (bytes 8-{}) is not a JSON object", path, 7 + n));
  const std::uint64_t start = 8 + n, payload = bytes.size() - start;
  TensorFile file;
  std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> spans;
  for (const auto& entry : header.items()) {
    const std::string& name = entry.key();
    const nlohmann::json& e = entry.value();
    if (name == "__metadata__") {
      if (!e.is_object()) throw Error(fmt::format("{}: __metadata__ is not an object", path));
      for (const auto& m : e.items()) {
        if (!m.value().is_string())
          throw Error(fmt::format("{}: __metadata__ '{}' is not a string", path, m.key()));
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const auto bad = [&](const std::string& why) {
      return Error(fmt::format("{}: tensor '{}': {}", path, name, why));
    };
    if (!e.is_object() || !e.contains("dtype") || !e["dtype"].is_string() || !e.contains("shape") ||
        !e["shape"].is_array() || !e.contains("data_offsets") || !e["data_offsets"].is_array() ||
        e["data_offsets"].size() != 2 || !e["data_offsets"][0].is_number_unsigned() ||
        !e["data_offsets"][1].is_number_unsigned())
      throw bad("needs dtype, shape and data_offsets [begin, end]");
    const std::string dtype = e["dtype"].get<std::string>();
    const auto type = std::find_if(dtypes().begin(), dtypes().end(),
                                   [&](const auto& d) { return d.first == dtype; });
    if (type == dtypes().end())
      throw bad(
          fmt::format("dtype {} is not one qlab reads (F64, F32, F16, BF16, I64, I32, I16, "
                      "I8, U8, BOOL)",
                      dtype));
    std::vector<std::int64_t> shape;
    std::uint64_t count = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > payload + 1)
        throw bad("a dimension is not a size the file can hold");
      shape.push_back(d.get<std::int64_t>());
      count = count > payload ? count : count * d.get<std::uint64_t>();
    }
    const std::uint64_t from = e["data_offsets"][0].get<std::uint64_t>(),
                        to = e["data_offsets"][1].get<std::uint64_t>();
    const auto item = static_cast<std::uint64_t>(c10::elementSize(type->second));
    if (from > to || to > payload)
      throw bad(fmt::format("data_offsets [{}, {}] lie outside the {} data bytes (truncated?)",
                            from, to, payload));
    if (count > payload || count * item != to - from)
      throw bad(fmt::format("shape [{}] of {} does not make the {} bytes its data_offsets give",
                            fmt::join(shape, ", "), dtype, to - from));
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type->second));
    if (to > from) std::memcpy(t.data_ptr(), bytes.data() + start + from, to - from);
    file.tensors[name] = t;
    spans.emplace_back(from, to, name);
  }
  // The tensors tile the data exactly, as the format requires: no byte is
  // read twice, none is left over.
  std::sort(spans.begin(), spans.end());
  std::uint64_t end = 0;
  std::string previous;
  for (const auto& [from, to, name] : spans) {
    if (from < end)
      throw Error(fmt::format("{}: tensors '{}' and '{}' overlap (data bytes {}-{})", path,
                              previous, name, from, std::min(end, to)));
    if (from > end)
      throw Error(fmt::format("{}: data bytes {}-{} belong to no tensor", path, end, from));
    end = to;
    previous = name;
  }
  if (end != payload)
    throw Error(fmt::format("{}: data bytes {}-{} belong to no tensor", path, end, payload));
  if (const auto it = file.metadata.find("qlab"); it != file.metadata.end()) {
    file.meta = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (file.meta.is_discarded())
      throw Error(fmt::format("{}: __metadata__ 'qlab' is not JSON", path));
  }
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: no such file", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  return parse_safetensors(bytes, path);
}

}  // namespace qlab
