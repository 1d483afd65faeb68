#include <qlab/error.hpp>
#include <qlab/quant/passes.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qat.hpp>

#include <fmt/format.h>

namespace qlab {
namespace {

// The node of the unfused graph whose output the fused node `name` computes.
std::string unfused_output(const std::map<std::string, FusionGroup>& groups,
                           const std::string& name) {
  auto it = groups.find(name);
  if (it == groups.end()) return name;
  if (!it->second.activation.empty()) return it->second.activation;
  if (!it->second.batch_norm.empty()) return it->second.batch_norm;
  return name;
}

}  // namespace

FakeQuantFactory qat_fake_quant(bool per_channel, bool reduce_range) {
  FakeQuantFactory make;
  make.weight = [=](int bits, const torch::Tensor&) { return minmax_weight(bits, per_channel); };
  make.activation = [=](int bits) { return observed_activation(bits, reduce_range); };
  return make;
}

Schema& add_finetune_options(Schema& s) {
  return s.integer("epochs", 1, "fine-tuning epochs with fake quantization", 1, 1000)
      .number("lr_factor", 0.1, "fine-tuning lr as a multiple of the baseline recipe's lr", 1e-6,
              10.0);
}

QatSpec finetune_spec(const std::string& name, const Options& o, const QuantizeContext& ctx) {
  QatSpec spec;
  spec.name = name;
  spec.rules = ctx.rules;
  spec.config = ctx.config;
  spec.epochs = o.get<std::int64_t>("epochs");
  spec.lr_factor = o.get<double>("lr_factor");
  return spec;
}

QuantizedModel quantization_aware_training(GraphModule trained, const QatSpec& spec,
                                           const FakeQuantFactory& make,
                                           const QuantizeContext& ctx) {
  if (!ctx.model || !ctx.calibration || ctx.calibration->size() == 0)
    throw Error(fmt::format("{}: training-aware quantization needs the model and its training data",
                            spec.name));
  GraphModule module = clone_module(trained);
  const Graph& g = module->graph();
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < g.nodes().size(); ++i) index[g.nodes()[i].name] = i;

  // Select and place quantizers on the fused graph, as the converted model has it.
  const GraphModule folded = fuse(module);
  const LayerSelection selection =
      select_layers(folded->graph(), spec.config, "[quantizer] config", spec.rules);
  const auto sites = activation_sites(folded->graph(), selection);
  const auto groups = fusion_groups(g);
  const torch::Device device = ctx.training.device;
  module->to(device);
  std::vector<std::unique_ptr<WeightFakeQuant>> weights(g.nodes().size());
  std::vector<std::shared_ptr<torch::nn::BatchNorm2dImpl>> batch_norms(g.nodes().size());
  std::vector<std::unique_ptr<ActivationFakeQuant>> outputs(g.nodes().size());
  for (const auto& [name, bits] : selection.layers) {
    if (bits.weight == 0) continue;
    const auto i = index.at(name);
    weights[i] = make.weight(bits.weight, layer_parameter(folded, name, "weight").to(device));
    if (const auto& bn = groups.at(name).batch_norm; !bn.empty())
      batch_norms[i] = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(module->layer(bn));
  }
  for (const auto& [name, bits] : sites)
    outputs[index.at(unfused_output(groups, name))] = make.activation(bits);

  TrainHooks hooks;
  hooks.weights = [&](std::size_t i, const torch::Tensor& w) {
    if (!weights[i]) return w;
    if (!batch_norms[i]) return weights[i]->forward(w);
    // Quantize the weight batch norm will be folded into, then undo the fold:
    // batch norm still normalises with batch statistics while training.
    const auto& bn = batch_norms[i];
    const auto factor =
        (bn->weight / (bn->running_var + bn->options.eps()).sqrt()).view({-1, 1, 1, 1});
    return weights[i]->forward(w * factor) / factor;
  };
  hooks.outputs = [&](std::size_t i, const torch::Tensor& v) {
    return outputs[i] ? outputs[i]->forward(v, module->is_training()) : v;
  };
  // One batch first: LSQ initialises its activation steps from it, observers see it.
  {
    torch::NoGradGuard no_grad;
    module->eval();
    const auto n = std::min<std::int64_t>(ctx.recipe.batch_size, ctx.calibration->size());
    module->forward(
        ctx.calibration->images.slice(0, 0, n).to(device),
        [&](std::size_t i, const torch::Tensor& v) {
          return outputs[i] ? outputs[i]->forward(v, /*training=*/true) : v;
        },
        hooks.weights);
  }
  for (auto& w : weights)
    if (w)
      for (auto& p : w->parameters()) hooks.parameters.push_back(p);
  for (auto& a : outputs)
    if (a)
      for (auto& p : a->parameters()) hooks.parameters.push_back(p);
  hooks.on_epoch = [&](std::int64_t epoch) {
    if (spec.freeze_observers_after >= 0 && epoch >= spec.freeze_observers_after)
      for (auto& a : outputs)
        if (a) a->freeze();
    if (spec.freeze_bn_after >= 0 && epoch >= spec.freeze_bn_after)
      for (const auto& n : g.nodes())
        if (n.op == Op::batch_norm2d) module->layer(n.name)->eval();
  };

  TrainRecipe recipe = ctx.recipe;
  recipe.epochs = spec.epochs;
  recipe.lr *= spec.lr_factor;
  recipe.schedule = "none";
  TrainSettings settings = ctx.training;
  settings.label = spec.name + " ";
  const TrainReport report = train(module, *ctx.model, *ctx.calibration, recipe, settings, hooks);
  module->to(torch::kCPU);
  module->eval();

  QuantizedModel q;
  q.scheme = Scheme::static_;
  q.float_module = fuse(module);
  q.float_layers = selection.float_layers;
  for (const auto& [name, bits] : selection.layers) {
    if (bits.weight == 0) {
      q.float_layers[name] = "weights not among its config entry's quant_types";
      continue;
    }
    q.layers[name] =
        weights[index.at(name)]->convert(layer_parameter(q.float_module, name, "weight"),
                                         layer_parameter(q.float_module, name, "bias"));
    q.layers[name].activation_bits = bits.input;
  }
  for (const auto& [name, bits] : sites)
    q.activations[name] = outputs[index.at(unfused_output(groups, name))]->qparams();
  q.training = epochs_json(report);
  q.train_seconds = report.seconds;
  q.notes.push_back(
      fmt::format("{}: fine-tuned the float baseline for {} epoch(s) at lr {:g} with fake "
                  "quantization in the forward pass",
                  spec.name, spec.epochs, recipe.lr));
  return q;
}

}  // namespace qlab
