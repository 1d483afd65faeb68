#include "io/torch_save.hpp"

#include "io/torch_pickle.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>

#include <zip.h>

#include <algorithm>

namespace qlab {
namespace {

// A deflated record that claims to expand more than this is a zip bomb.
constexpr zip_uint64_t kMaxExpansion = 100;

// A libzip archive over bytes in memory, read-only.
class Zip {
 public:
  Zip(const std::string& bytes, const std::string& path) : path_(path), size_(bytes.size()) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
    if (source) archive_ = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
    if (!archive_) {
      const std::string why = zip_error_strerror(&error);
      if (source) zip_source_free(source);
      zip_error_fini(&error);
      throw Error(fmt::format("{}: not a readable zip ({})", path, why));
    }
    zip_error_fini(&error);
  }
  ~Zip() { zip_discard(archive_); }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    const zip_int64_t n = zip_get_num_entries(archive_, 0);
    for (zip_int64_t k = 0; k < n; ++k)
      if (const char* name = zip_get_name(archive_, static_cast<zip_uint64_t>(k), 0))
        out.emplace_back(name);
    return out;
  }

  bool has(const std::string& name) const {
    return zip_name_locate(archive_, name.c_str(), 0) >= 0;
  }

  std::string read(const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(archive_, name.c_str(), 0, &st) != 0)
      throw Error(fmt::format("{}: no record {} in the zip", path_, name));
    if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_METHOD))
      throw Error(fmt::format("{}: record {} has no size", path_, name));
    if (st.comp_method == ZIP_CM_STORE && st.size != st.comp_size)
      throw Error(fmt::format("{}: record {} is stored as {} bytes but claims {}", path_, name,
                              st.comp_size, st.size));
    if (st.size / kMaxExpansion > std::max<zip_uint64_t>(st.comp_size, 1))
      throw Error(
          fmt::format("{}: record {} claims {} bytes from {} compressed: a zip bomb? "
                      "torch.save stores records uncompressed",
                      path_, name, st.size, st.comp_size));
    if (st.comp_size > size_)
      throw Error(fmt::format("{}: record {} claims {} compressed bytes; the file has {}", path_,
                              name, st.comp_size, size_));
    zip_file_t* file = zip_fopen(archive_, name.c_str(), 0);
    if (!file) throw Error(fmt::format("{}: record {}: {}", path_, name, zip_strerror(archive_)));
    std::string out(st.size, '\0');
    const zip_int64_t n = out.empty() ? 0 : zip_fread(file, out.data(), st.size);
    char past;
    const zip_int64_t more =
        n < 0 ? 0 : zip_fread(file, &past, 1);  // reaching the end checks the CRC
    const std::string why = n < 0 || more < 0 ? zip_file_strerror(file) : "";
    zip_fclose(file);
    if (n < 0 || more < 0 || static_cast<zip_uint64_t>(n) != st.size || more != 0)
      throw Error(fmt::format("{}: record {} is corrupt{}", path_, name,
                              why.empty() ? std::string() : " (" + why + ")"));
    return out;
  }

 private:
  std::string path_;
  zip_uint64_t size_;  // the archive's bytes: no record's compressed bytes are more
  zip_t* archive_ = nullptr;
};

}  // namespace

std::map<std::string, torch::Tensor> parse_torch_save(const std::string& bytes,
                                                      const std::string& path) {
  const Zip zip(bytes, path);
  // Every record sits in one folder, named after the file when it was saved.
  std::string folder;
  bool found = false;
  for (const auto& name : zip.names()) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash + 1, std::string::npos, "data.pkl") == 0) {
      folder = name.substr(0, slash + 1);
      found = true;
      break;
    }
  }
  if (!found)
    throw Error(fmt::format("{}: a zip without <folder>/data.pkl, so not a torch.save file", path));
  if (zip.has(folder + "byteorder") && zip.read(folder + "byteorder") != "little")
    throw Error(
        fmt::format("{}: saved on a big-endian machine; qlab reads little-endian storages", path));
  const std::string pickle = zip.read(folder + "data.pkl");
  std::map<std::string, std::string> records;
  const StorageBytes storage = [&](const std::string& key) -> std::string_view {
    auto it = records.find(key);
    if (it == records.end()) it = records.emplace(key, zip.read(folder + "data/" + key)).first;
    return it->second;
  };
  return unpickle_state_dict(pickle, storage, path + ": " + folder + "data.pkl");
}

}  // namespace qlab
