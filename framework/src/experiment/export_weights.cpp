// `qlab export --weights`: an experiment's float baseline, trained or from
// the cache as `qlab run` would get it, written as a safetensors file that
// PyTorch reads (safetensors.torch.load_file) under its own names.
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>

#include "experiment/baseline.hpp"
#include "experiment/resolve.hpp"

#include <fmt/format.h>

namespace qlab {

std::vector<std::string> export_float_weights(const Experiment& ex, const Registry& registry,
                                              const RunSettings& settings, const std::string& out,
                                              std::ostream& log) {
  const Resolved r = resolve_experiment(ex, registry);
  require_available(r, ex);
  FloatBaseline b = float_baseline(r, settings, log);
  b.module->to(torch::kCPU);
  save_checkpoint(out, b.module, {{"model", r.model_name}, {"identity", b.identity}});
  b.row.notes.push_back(fmt::format("float weights of {} written to {} ({} parameters)",
                                    r.model_name, out, b.p.graph.parameter_count()));
  return b.row.notes;
}

}  // namespace qlab
