#include "experiment/measure.hpp"

namespace qlab {

const std::vector<torch::Tensor>& RunContext::test_outputs() {
  if (outputs_.empty()) {
    // Seeded, so that a stochastic model (a VAE samples its latent code)
    // sees the same noise in every row: rows compare like with like.
    torch::manual_seed(0);
    // In the metric's batches: chunks of 1,000 images made temporaries the
    // allocator handed back to the kernel, which took longer than the model.
    std::vector<std::vector<torch::Tensor>> parts;
    for (std::int64_t i = 0; i < test_.size(); i += batch_) {
      auto out = exe_.run(test_.images.slice(0, i, std::min(test_.size(), i + batch_)));
      if (parts.empty()) parts.resize(out.size());
      for (std::size_t k = 0; k < out.size(); ++k) parts[k].push_back(out[k]);
    }
    for (auto& p : parts) outputs_.push_back(torch::cat(p));
  }
  return outputs_;
}

Measured measure(const std::vector<std::string>& metric_names,
                 const std::vector<std::shared_ptr<Metric>>& metrics, RunContext& ctx) {
  Measured m;
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const auto before = m.metrics.size();
    metrics[i]->measure(ctx, m.metrics);
    if (m.metrics.size() == before) m.not_applicable.push_back(metric_names[i]);
  }
  m.mode = ctx.executable().mode();
  m.executable = ctx.executable().describe();
  return m;
}

}  // namespace qlab
