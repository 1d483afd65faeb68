#include "commands.hpp"

#include <qlab/error.hpp>
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
  std::string onnx;
  std::string reference;
  std::string cache_dir = ".qlab/cache";
  bool quiet = false;
};

}  // namespace

void add_export_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export",
      "Write an experiment's model for other tools: its float weights (trained, or from the "
      "cache) for PyTorch, or the model, quantized as `qlab run` quantizes it, as ONNX QDQ");
  cmd->add_option("experiment", args->file, "experiment file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--weights", args->weights,
                  "write the float weights here, as safetensors under PyTorch's names");
  auto* onnx = cmd->add_option("--onnx", args->onnx,
                               "write the model here as ONNX (opset 13): QDQ when quantized");
  cmd->add_option("--reference", args->reference,
                  "with --onnx: write the test images and qlab's outputs on them here "
                  "(safetensors), to check a runtime against")
      ->needs(onnx);
  cmd->add_option("--cache", args->cache_dir, "folder of cached float baselines")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "no progress bars");
  cmd->callback([args, &exit_code] {
    RunSettings settings;
    settings.cache_dir = args->cache_dir;
    settings.progress = !args->quiet;
    if (args->weights.empty() && args->onnx.empty())
      throw Error("qlab export: give --weights FILE, --onnx FILE, or both");
    const Experiment ex = load_experiment(args->file);
    const Registry registry = discover_plugins();
    std::vector<std::string> notes;
    if (!args->weights.empty())
      notes = export_float_weights(ex, registry, settings, args->weights, std::cerr);
    if (!args->onnx.empty())
      for (auto& n : export_onnx(ex, registry, settings, args->onnx, args->reference, std::cerr))
        notes.push_back(std::move(n));
    for (const auto& n : notes) fmt::print(stderr, "note: {}\n", n);
    exit_code = 0;
  });
}

}  // namespace qlab::cli
