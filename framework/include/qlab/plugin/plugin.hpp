#pragma once
// What every plugin exports, and the one macro that exports it.
//
// A plugin is a shared library with two symbols:
//  - `qlab_plugin_info`: a plain PluginInfo the host reads *before* it calls
//    any code in the library, so a plugin built for another API or LibTorch
//    is refused without running it;
//  - `qlab_plugin_factory` (a Boost.DLL alias): creates the plugin object.
#include <torch/version.h>

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>
#include <memory>

namespace qlab {

/// Version of the plugin ABI: the PluginInfo layout and everything a plugin
/// can include, which is every header under qlab/plugin/ (the interfaces and
/// the types they use) and qlab/quant/ (the toolkit quantizers call: QParams,
/// PtqSpec, QatSpec, QuantizedModel, ...), and the qlab/ headers those reach.
/// Rule: bump it on any change there that alters a virtual table, a class or
/// struct layout, an inline function or a signature; a plugin compiled
/// against the old headers would otherwise load and run wrong.
constexpr int kPluginApiVersion = 9;

/// The LibTorch a plugin was compiled against: tensors and modules cross the
/// plugin boundary, so plugin and host must share it exactly.
constexpr const char* kTorchVersion = TORCH_VERSION;

enum class PluginKind { model, quantizer, backend, metric };

const char* to_string(PluginKind kind);

/// Plain data, read by the host with no plugin code running.
struct PluginInfo {
  int api_version;            ///< kPluginApiVersion at the plugin's build
  const char* torch_version;  ///< kTorchVersion at the plugin's build
  const char* kind;           ///< "model", "quantizer", "backend" or "metric"
  const char* name;           ///< unique within its kind, used in configs
  const char* description;    ///< one line, shown by `qlab plugins`
};

/// Base of every plugin object; the host downcasts by the declared kind.
class Plugin {
 public:
  virtual ~Plugin() = default;
};

using PluginFactory = std::unique_ptr<Plugin>();

}  // namespace qlab

/// Registers `Class` (derived from qlab::Model, Quantizer, Backend or Metric)
/// as this library's plugin. Use once per plugin library, at namespace scope.
#define QLAB_PLUGIN(Class, kind_str, name_str, description_str)                               \
  extern "C" BOOST_SYMBOL_EXPORT const ::qlab::PluginInfo qlab_plugin_info{                   \
      ::qlab::kPluginApiVersion, ::qlab::kTorchVersion, kind_str, name_str, description_str}; \
  namespace {                                                                                 \
  std::unique_ptr<::qlab::Plugin> qlab_make_plugin() { return std::make_unique<Class>(); }    \
  }                                                                                           \
  BOOST_DLL_ALIAS(qlab_make_plugin, qlab_plugin_factory)
