#include "commands.hpp"

#include <qlab/error.hpp>
#include <qlab/registry.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

namespace qlab::cli {
namespace {

struct PrintArgs {
  std::string model;
  std::string dataset = "fashion-mnist";
  std::int64_t classes = 10;
};

}  // namespace

void add_print_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<PrintArgs>();
  auto* cmd = app.add_subcommand(
      "print",
      "Print a model's architecture as PyTorch's print(model) does, with its parameter "
      "and MAC counts (model options at their defaults)");
  cmd->add_option("model", args->model, "model plugin name")->required();
  cmd->add_option("--dataset", args->dataset, "the dataset whose sample shape the model adapts to")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10", "cifar100"}))
      ->capture_default_str();
  cmd->add_option("--classes", args->classes, "number of classes")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->callback([args, &exit_code] {
    const Registry registry = Registry::discover();
    auto model = registry.model(args->model);
    const Options opts = resolve(model->options(), RawSection{"model", {}, {}});
    const Shape native = args->dataset.rfind("cifar", 0) == 0 ? Shape{3, 32, 32} : Shape{1, 28, 28};
    const Shape in = model->input_shape(native, opts);
    const Graph g = model->build(opts, {args->dataset, in, args->classes});
    fmt::print("{}\n", g.print());
    fmt::print("input [{}], {} parameters, {} MACs per sample\n", fmt::join(in, ", "),
               g.parameter_count(), g.mac_count());
    exit_code = 0;
  });
}

}  // namespace qlab::cli
