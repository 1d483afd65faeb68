#include "commands.hpp"

#include <qlab/experiment.hpp>
#include <qlab/runtime.hpp>

#include <fmt/format.h>

#include <iostream>
#include <memory>

namespace qlab::cli {
namespace {

struct ExportArgs {
  std::string file;
  std::string weights;
  std::string cache_dir = ".qlab/cache";
  bool quiet = false;
};

}  // namespace

void add_export_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export",
      "Write an experiment's trained float model (trained, or from the cache) for other tools");
  cmd->add_option("experiment", args->file, "experiment file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--weights", args->weights,
                  "the float weights, as safetensors under PyTorch's names")
      ->required();
  cmd->add_option("--cache", args->cache_dir, "folder of cached float baselines")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "no progress bars");
  cmd->callback([args, &exit_code] {
    RunSettings settings;
    settings.cache_dir = args->cache_dir;
    settings.progress = !args->quiet;
    for (const auto& n : export_float_weights(load_experiment(args->file), discover_plugins(),
                                              settings, args->weights, std::cerr))
      fmt::print(stderr, "note: {}\n", n);
    exit_code = 0;
  });
}

}  // namespace qlab::cli
