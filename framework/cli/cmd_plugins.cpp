#include "commands.hpp"

#include <qlab/registry.hpp>

#include <fmt/format.h>

namespace qlab::cli {

Registry discover_plugins() {
  Registry registry = Registry::discover();
  for (const auto& p : registry.problems())
    fmt::print(stderr, "qlab: warning: plugin refused: {}\n", p);
  return registry;
}

void add_plugins_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "plugins",
      "List every plugin found (build folder, then QLAB_PLUGIN_PATH) and every file "
      "that was refused, with the reason");
  cmd->callback([&exit_code] {
    exit_code = 0;
    const Registry registry = Registry::discover();
    fmt::print("{:<10} {:<14} {:<7} {:<9} {:<52} {}\n", "kind", "name", "api", "libtorch",
               "description", "file");
    for (const auto& r : registry.records()) {
      std::string status;
      if (r.kind == PluginKind::backend) {
        try {
          const auto backend = registry.backend(r.name);
          const auto avail = backend->availability();
          const auto engine = backend->constraints();
          if (!avail.available)
            status = " [unavailable: " + avail.reason + "]";
          else if (!engine.int8_path.empty())
            status = fmt::format(" [int8: {}; 8-bit activations on {} bits]", engine.int8_path,
                                 engine.reduce_range ? 7 : 8);
        } catch (const Error& e) {
          status = " [error, below]";
          fmt::print(stderr, "qlab: error: {}\n", e.what());
          exit_code = 1;
        }
      }
      fmt::print("{:<10} {:<14} {:<7} {:<9} {:<52} {}\n", to_string(r.kind), r.name, r.api_version,
                 r.torch_version, r.description + status, r.file.string());
    }
    for (const auto& p : registry.problems()) fmt::print(stderr, "refused: {}\n", p);
  });
}

}  // namespace qlab::cli
