#pragma once
// Finds, checks and loads plugins. Only registry.cpp touches Boost.DLL.
#include <qlab/error.hpp>
#include <qlab/plugin/backend.hpp>
#include <qlab/plugin/metric.hpp>
#include <qlab/plugin/model.hpp>
#include <qlab/plugin/plugin.hpp>
#include <qlab/plugin/quantizer.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace qlab {

struct PluginRecord {
  PluginKind kind;
  std::string name;
  std::string description;
  int api_version = 0;
  std::string torch_version;
  std::filesystem::path file;
};

class Registry {
 public:
  Registry() = default;

  /// The plugin folders, in search order: the build's (or install's) own
  /// plugin folder beside the executable, then each folder of QLAB_PLUGIN_PATH.
  static std::vector<std::filesystem::path> default_dirs();
  /// A registry holding every plugin of default_dirs() that loads.
  static Registry discover();

  /// Loads every `*.so` in `dir`; a file that is refused is recorded in
  /// problems() and the scan goes on.
  void load_dir(const std::filesystem::path& dir);
  /// Loads one plugin file; throws PluginError naming the file and the reason
  /// (not a qlab plugin, API or LibTorch version mismatch, duplicate kind and
  /// name, factory failure, a file or folder writable by every user unless
  /// QLAB_ALLOW_WRITABLE_PLUGINS=1).
  void load_file(const std::filesystem::path& file);

  std::vector<PluginRecord> records() const;
  const std::vector<std::string>& problems() const { return problems_; }

  /// The named plugin, behind the plugin boundary: the object returned keeps
  /// the plugin's library loaded, and each of its methods (and those of the
  /// executables a backend lowers) turns an exception thrown in plugin code
  /// into a PluginError tagged with the plugin and the method. Throws
  /// qlab::Error listing the available names.
  std::shared_ptr<Model> model(const std::string& name) const;
  std::shared_ptr<Quantizer> quantizer(const std::string& name) const;
  std::shared_ptr<Backend> backend(const std::string& name) const;
  std::shared_ptr<Metric> metric(const std::string& name) const;
  const PluginRecord& record(PluginKind kind, const std::string& name) const;
  std::vector<std::string> names(PluginKind kind) const;

 private:
  struct Entry {
    PluginRecord record;
    std::shared_ptr<Plugin> object;  // owns its library too (see registry.cpp)
  };
  const Entry& find(PluginKind kind, const std::string& name) const;
  /// `e`'s object as interface T, behind the plugin boundary (guarded.hpp).
  template <class T>
  static std::shared_ptr<T> guarded(const Entry& e);
  std::vector<Entry> entries_;
  std::vector<std::string> problems_;
};

/// Runs `fn`, a call into plugin `who`, turning any exception into a
/// PluginError tagged with the plugin and method (STYLE.md practice 6).
template <class F>
auto plugin_call(const PluginRecord& who, const char* method, F&& fn) -> decltype(fn());

[[noreturn]] void rethrow_from_plugin(const PluginRecord& who, const char* method);

template <class F>
auto plugin_call(const PluginRecord& who, const char* method, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (...) {
    rethrow_from_plugin(who, method);
  }
}

}  // namespace qlab
