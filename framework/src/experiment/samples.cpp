#include <qlab/error.hpp>
#include <qlab/samples.hpp>

namespace qlab {
namespace {

constexpr std::int64_t kShown = 8, kPrior = 16;

std::vector<int> pixels(const torch::Tensor& images) {
  const auto t = images.detach()
                     .to(torch::kCPU)
                     .reshape({-1})
                     .clamp(0, 1)
                     .mul(255)
                     .round()
                     .to(torch::kInt32)
                     .contiguous();
  return {t.data_ptr<int>(), t.data_ptr<int>() + t.numel()};
}

}  // namespace

nlohmann::json reconstruction_samples(Executable& exe, const Dataset& test,
                                      GraphModule* float_module) {
  const std::int64_t n = std::min(kShown, test.size());
  if (n == 0) return nullptr;
  torch::NoGradGuard no_grad;
  const auto originals = test.images.slice(0, 0, n);
  torch::manual_seed(0);
  const auto out = exe.run(originals);
  QLAB_CHECK(!out.empty() && out[0].numel() == originals.numel(),
             "a reconstruction model's first output has the input's size");
  nlohmann::json j = {{"width", originals.size(-1)},
                      {"height", originals.size(-2)},
                      {"originals", pixels(originals)},
                      {"reconstructions", pixels(out[0])}};
  if (!float_module) return j;
  const auto& nodes = (*float_module)->graph().nodes();
  const auto it = std::find_if(nodes.begin(), nodes.end(),
                               [](const Node& x) { return x.op == Op::reparameterize; });
  if (it == nodes.end()) return j;
  const auto z_node = static_cast<std::size_t>(it - nodes.begin());
  // The decoder alone: any input, with the code it would sample replaced by N(0, I).
  torch::manual_seed(0);
  const auto decoded =
      (*float_module)
          ->forward(test.images.slice(0, 0, 1).expand({kPrior, -1, -1, -1}).contiguous(),
                    [z_node](std::size_t node, const torch::Tensor& value) {
                      return node == z_node ? torch::randn_like(value) : value;
                    });
  j["prior"] = pixels(decoded.at(0));
  return j;
}

}  // namespace qlab
