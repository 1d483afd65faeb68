// The plugin loader: the only file that touches Boost.DLL. It reads a
// library's PluginInfo before running any of its code and refuses, with the
// file and both versions, anything built for another API or LibTorch.
#include <qlab/registry.hpp>

#include "plugin/guarded.hpp"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/dll/import.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace qlab {

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::model:
      return "model";
    case PluginKind::quantizer:
      return "quantizer";
    case PluginKind::backend:
      return "backend";
    case PluginKind::metric:
      return "metric";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;

std::optional<PluginKind> parse_kind(const char* s) {
  for (auto k : {PluginKind::model, PluginKind::quantizer, PluginKind::backend, PluginKind::metric})
    if (s && std::strcmp(s, to_string(k)) == 0) return k;
  return std::nullopt;
}

bool kind_matches(PluginKind kind, const Plugin* p) {
  switch (kind) {
    case PluginKind::model:
      return dynamic_cast<const Model*>(p) != nullptr;
    case PluginKind::quantizer:
      return dynamic_cast<const Quantizer*>(p) != nullptr;
    case PluginKind::backend:
      return dynamic_cast<const Backend*>(p) != nullptr;
    case PluginKind::metric:
      return dynamic_cast<const Metric*>(p) != nullptr;
  }
  return false;
}

// Owns the object and its library; members are destroyed in reverse order,
// so the object always dies before the code that implements it is unloaded.
struct Loaded {
  boost::dll::shared_library library;
  std::unique_ptr<Plugin> object;
};

}  // namespace

std::vector<fs::path> Registry::default_dirs() {
  std::vector<fs::path> dirs;
  const fs::path exe_dir = boost::dll::program_location().parent_path().string();
  // The build tree keeps plugins beside the executable; an install keeps them
  // under <prefix>/<libdir>/qlab/plugins.
  for (const auto& candidate : {exe_dir / "plugins", exe_dir / QLAB_INSTALLED_PLUGIN_DIR})
    if (fs::is_directory(candidate)) dirs.push_back(fs::weakly_canonical(candidate));
  if (const char* env = std::getenv("QLAB_PLUGIN_PATH")) {
    std::string list = env;
    std::size_t start = 0;
    while (start <= list.size()) {
      auto colon = list.find(':', start);
      auto item =
          list.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!item.empty()) dirs.emplace_back(item);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  return dirs;
}

Registry Registry::discover() {
  Registry r;
  for (const auto& dir : default_dirs()) r.load_dir(dir);
  return r;
}

void Registry::load_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    problems_.push_back(fmt::format("{}: plugin folder does not exist", dir.string()));
    return;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".so") files.push_back(e.path());
  std::sort(files.begin(), files.end());  // the first of two duplicates wins, reproducibly
  for (const auto& f : files) {
    try {
      load_file(f);
    } catch (const PluginError& e) {
      problems_.push_back(e.what());
    }
  }
}

namespace {

// Loading a plugin runs its code as this user: a file, or a folder, that
// anyone may write would let anyone do that.
void refuse_world_writable(const fs::path& file) {
  if (const char* allow = std::getenv("QLAB_ALLOW_WRITABLE_PLUGINS");
      allow && std::string(allow) == "1")
    return;
  for (const fs::path& p :
       {file, file.parent_path().empty() ? fs::path(".") : file.parent_path()}) {
    std::error_code ec;
    const auto perms = fs::status(p, ec).permissions();
    if (ec || (perms & fs::perms::others_write) == fs::perms::none) continue;
    throw PluginError(fmt::format(
        "{}: refused: {} {} is writable by every user (mode {:o}), so anyone could replace the "
        "code qlab "
        "would run; chmod o-w it, or set QLAB_ALLOW_WRITABLE_PLUGINS=1 to load it anyway",
        file.string(), p == file ? "the file" : "its folder", p.string(),
        static_cast<unsigned>(perms)));
  }
}

}  // namespace

void Registry::load_file(const fs::path& file) {
  const std::string where = file.string();
  refuse_world_writable(file);
  auto loaded = std::make_shared<Loaded>();
  try {
    loaded->library.load(boost::dll::fs::path(where), boost::dll::load_mode::rtld_now);
  } catch (const std::exception& e) {
    throw PluginError(fmt::format("{}: cannot be loaded: {}", where, e.what()));
  }
  if (!loaded->library.has("qlab_plugin_info") || !loaded->library.has("qlab_plugin_factory"))
    throw PluginError(
        fmt::format("{}: not a qlab plugin (no qlab_plugin_info/qlab_plugin_factory "
                    "symbols; was it built with QLAB_PLUGIN?)",
                    where));
  const auto& info = loaded->library.get<const PluginInfo>("qlab_plugin_info");
  if (info.api_version != kPluginApiVersion)
    throw PluginError(
        fmt::format("{}: built for plugin API version {}, this qlab has version {}; "
                    "rebuild the plugin against this qlab",
                    where, info.api_version, kPluginApiVersion));
  const std::string torch_version = info.torch_version ? info.torch_version : "";
  if (torch_version != kTorchVersion)
    throw PluginError(
        fmt::format("{}: built against LibTorch {}, this qlab uses LibTorch {}; "
                    "rebuild the plugin against the same LibTorch",
                    where, torch_version, kTorchVersion));
  const auto kind = parse_kind(info.kind);
  if (!kind)
    throw PluginError(
        fmt::format("{}: unknown plugin kind '{}' (expected model, quantizer, "
                    "backend or metric)",
                    where, info.kind ? info.kind : ""));
  PluginRecord rec{*kind,
                   info.name ? info.name : "",
                   info.description ? info.description : "",
                   info.api_version,
                   torch_version,
                   file};
  if (rec.name.empty()) throw PluginError(fmt::format("{}: the plugin has an empty name", where));
  for (const auto& e : entries_)
    if (e.record.kind == rec.kind && e.record.name == rec.name)
      throw PluginError(fmt::format("{}: {} plugin '{}' is already loaded from {}", where,
                                    to_string(rec.kind), rec.name, e.record.file.string()));
  try {
    auto& factory = loaded->library.get_alias<PluginFactory>("qlab_plugin_factory");
    loaded->object = factory();
  } catch (...) {
    try {
      throw;
    } catch (const std::exception& e) {
      throw PluginError(fmt::format("{}: the plugin factory failed: {}", where, e.what()));
    } catch (...) {
      throw PluginError(
          fmt::format("{}: the plugin factory failed with an unknown exception", where));
    }
  }
  if (!loaded->object)
    throw PluginError(fmt::format("{}: the plugin factory returned nothing", where));
  if (!kind_matches(rec.kind, loaded->object.get()))
    throw PluginError(fmt::format("{}: declares kind '{}' but its object is not a qlab::{}", where,
                                  to_string(rec.kind), to_string(rec.kind)));
  Plugin* raw = loaded->object.get();
  entries_.push_back({std::move(rec), std::shared_ptr<Plugin>(loaded, raw)});
}

std::vector<PluginRecord> Registry::records() const {
  std::vector<PluginRecord> out;
  for (const auto& e : entries_) out.push_back(e.record);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.kind, a.name) < std::make_pair(b.kind, b.name);
  });
  return out;
}

std::vector<std::string> Registry::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& e : entries_)
    if (e.record.kind == kind) out.push_back(e.record.name);
  std::sort(out.begin(), out.end());
  return out;
}

const Registry::Entry& Registry::find(PluginKind kind, const std::string& name) const {
  for (const auto& e : entries_)
    if (e.record.kind == kind && e.record.name == name) return e;
  auto known = names(kind);
  throw Error(fmt::format("unknown {} plugin '{}' (installed: {})", to_string(kind), name,
                          known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
}

const PluginRecord& Registry::record(PluginKind kind, const std::string& name) const {
  return find(kind, name).record;
}

template <class T>
std::shared_ptr<T> Registry::guarded(const Entry& e) {
  return guard(std::shared_ptr<T>(e.object, dynamic_cast<T*>(e.object.get())), e.record);
}

std::shared_ptr<Model> Registry::model(const std::string& name) const {
  return guarded<Model>(find(PluginKind::model, name));
}
std::shared_ptr<Quantizer> Registry::quantizer(const std::string& name) const {
  return guarded<Quantizer>(find(PluginKind::quantizer, name));
}
std::shared_ptr<Backend> Registry::backend(const std::string& name) const {
  return guarded<Backend>(find(PluginKind::backend, name));
}
std::shared_ptr<Metric> Registry::metric(const std::string& name) const {
  return guarded<Metric>(find(PluginKind::metric, name));
}

void rethrow_from_plugin(const PluginRecord& who, const char* method) {
  const std::string tag = fmt::format("{} plugin '{}' ({})", to_string(who.kind), who.name, method);
  // Always a new exception made here: the one in flight may have been made
  // by the plugin's code (its vtable in the plugin's library), and it must
  // not outlive that library, which may be unloaded while it unwinds.
  try {
    throw;
  } catch (const Interrupted& e) {
    throw Interrupted(e.what());
  } catch (const PluginError& e) {
    throw PluginError(e.what());
  } catch (const Error& e) {
    // A user error the plugin already phrased (a bad option, a missing file):
    // its message as it is.
    throw Error(e.what());
  } catch (const c10::Error& e) {
    throw PluginError(fmt::format("{}: {}", tag, e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw PluginError(fmt::format("{}: {}", tag, e.what()));
  } catch (...) {
    throw PluginError(fmt::format("{}: unknown exception", tag));
  }
}

}  // namespace qlab
