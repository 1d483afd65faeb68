#include "commands.hpp"

#include <qlab/experiment.hpp>
#include <qlab/runtime.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <memory>

namespace qlab::cli {
namespace {

struct RunArgs {
  std::string file;
  std::string json;
  std::string cache_dir = ".qlab/cache";
  std::string save_quantized;
  bool no_cache = false;
  bool quiet = false;
  bool print_model = false;
};

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand(
      "run", "Run one experiment file: train (or reuse) the float baseline, then measure it");
  cmd->add_option("experiment", args->file, "experiment file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--json", args->json, "also write the result rows to this JSON file");
  cmd->add_option("--cache", args->cache_dir, "folder of cached float baselines")
      ->capture_default_str();
  cmd->add_option(
      "--save-quantized", args->save_quantized,
      "write the quantized model to this qlab checkpoint (bit-packed weights, qparams)");
  cmd->add_flag("--no-cache", args->no_cache, "retrain the float baseline even if it is cached");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress bars");
  cmd->add_flag(
      "--print-model", args->print_model,
      "print the model as PyTorch's print(model) does, and the quantized model's kernels");
  cmd->callback([args, &exit_code] {
    const Experiment ex = load_experiment(args->file);
    const Registry registry = discover_plugins();
    RunSettings settings;
    settings.cache_dir = args->cache_dir;
    settings.use_cache = !args->no_cache;
    settings.progress = !args->quiet;
    settings.save_quantized = args->save_quantized;
    const auto rows = run_experiment(ex, registry, settings, std::cerr);
    for (const auto& r : rows)
      for (const auto& n : r.notes) fmt::print(stderr, "note: {}\n", n);
    fmt::print(stderr, "{}\n", runtime_summary());
    if (args->print_model && !rows.empty()) {
      fmt::print("{}\n", rows.front().graph);
      for (const auto& r : rows)
        if (!r.lowered.empty())
          fmt::print("{} {} on {}:\n  {}\n", r.quantizer, to_string(r.mode), r.backend,
                     fmt::join(r.lowered, "\n  "));
    }
    fmt::print("{}", format_rows(rows));
    fmt::print("{}", format_comparison(rows));
    if (!args->json.empty()) {
      write_rows_json(args->json, rows);
      fmt::print(stderr, "wrote {}\n", args->json);
    }
    exit_code = 0;
  });
}

}  // namespace qlab::cli
