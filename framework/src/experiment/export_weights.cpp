// `qlab export --weights`: an experiment's float baseline, trained or from
// the cache as `qlab run` would get it, written as a safetensors file that
// PyTorch reads (safetensors.torch.load_file) under its own names.
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/plugin/trainer.hpp>

#include "experiment/baseline.hpp"
#include "experiment/resolve.hpp"
#include "experiment/stable_hash.hpp"

#include <fmt/format.h>

namespace qlab {

std::vector<std::string> export_float_weights(const Experiment& ex, const Registry& registry,
                                              const RunSettings& settings, const std::string& out,
                                              std::ostream& log) {
  const Resolved r = resolve_experiment(ex, registry);
  if (!r.availability.available)
    throw Error(fmt::format("{}: [backend] name: backend '{}' is unavailable: {}",
                            at(ex.backend, "name"), r.backend_name, r.availability.reason));
  const Prepared p = prepare(r, settings.shared.get(), log);
  seed_everything(r.recipe.seed);
  GraphModule module(p.graph);
  nlohmann::json config = r.config;
  config["quantizer"] = {{"name", "none"}};
  const nlohmann::json identity = baseline_identity(p, config);
  ResultRow row;
  shared_baseline(module, r, p.data.train, identity, stable_hash(identity.dump()), settings, row);
  module->to(torch::kCPU);
  save_checkpoint(out, module, {{"model", r.model_name}, {"identity", identity}});
  row.notes.push_back(fmt::format("float weights of {} written to {} ({} parameters)", r.model_name,
                                  out, p.graph.parameter_count()));
  return row.notes;
}

}  // namespace qlab
