#include <qlab/error.hpp>
#include <qlab/quant/passes.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

namespace qlab {

namespace {

// Batches of calibration images the range searches (weights, logits) fit
// on: their errors are sums over many outputs, so a few batches settle them.
constexpr std::int64_t kRangeSearchBatches = 4;

// Calibrates on the float fused model, as PyTorch's observers do: the
// observers see float values, so what they learn does not depend on bits.
CalibratedObservers calibrate(GraphModule fused, const std::map<std::string, int>& sites,
                              const PtqSpec& spec, const Dataset& calibration) {
  const Graph& g = fused->graph();
  std::vector<std::unique_ptr<Observer>> observers(g.nodes().size());
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    if (sites.count(g.nodes()[i].name))
      observers[i] = make_observer(spec.observer, -1, spec.percentile);
  const auto images = calibration_sample(calibration, spec.calibration_batches * spec.batch_size,
                                         4242, "static quantization");
  const std::int64_t n = images.size(0);
  torch::NoGradGuard no_grad;
  for (std::int64_t start = 0; start < n; start += spec.batch_size) {
    fused->forward(images.slice(0, start, std::min(n, start + spec.batch_size)),
                   [&](std::size_t i, const torch::Tensor& v) {
                     if (observers[i]) observers[i]->observe(v);
                     return v;
                   });
  }
  return {std::make_move_iterator(observers.begin()), std::make_move_iterator(observers.end())};
}

// Everything calibration depends on besides the bits: the float model and
// its data (model_id) and whether it was equalized, the observer, the
// sample, and which outputs it sees.
std::string calibration_key(const PtqSpec& spec, const std::map<std::string, int>& sites) {
  std::string key = fmt::format("{}|{}|{}|{}|{}|{}|", spec.model_id, spec.observer, spec.percentile,
                                spec.calibration_batches, spec.batch_size, spec.equalize);
  for (const auto& [name, bits] : sites) key += name + ",";
  return key;
}

// Fixes every activation's qparams from the float model's calibration.
void calibrate_activations(QuantizedModel& q, const LayerSelection& selection, const PtqSpec& spec,
                           const Dataset& calibration) {
  const Graph& g = q.graph();
  const auto sites = activation_sites(g, selection);
  const auto observe = [&] { return calibrate(q.float_module, sites, spec, calibration); };
  std::shared_ptr<const CalibratedObservers> observed;
  if (spec.cache && !spec.model_id.empty())
    observed = spec.cache->get(calibration_key(spec, sites), observe);
  else
    observed = std::make_shared<const CalibratedObservers>(observe());
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    if (const auto& obs = (*observed)[i]) {
      const int bits = sites.at(g.nodes()[i].name);
      q.activations[g.nodes()[i].name] =
          obs->qparams(bits, /*symmetric=*/false, spec.reduce_range && bits == 8);
    }
}

// Bias correction comes after calibration: it depends on the weight bits,
// and calibration, shared across bit widths, must not.
QuantizedModel corrected(QuantizedModel q, const PtqSpec& spec, const Dataset& calibration) {
  if (!spec.bias_correction) return q;
  const std::int64_t batches = std::max<std::int64_t>(1, spec.calibration_batches);
  const auto images =
      calibration_sample(calibration, batches * spec.batch_size, 4243, "bias correction");
  const auto left_out = correct_biases(q, images);
  q.notes.push_back(fmt::format("bias correction: {} layer(s) corrected on {} calibration images",
                                q.layers.size() - left_out.size(), images.size(0)));
  for (const auto& why : left_out) q.notes.push_back("bias correction left out " + why);
  return q;
}

}  // namespace

Dataset calibration_subset(const Dataset& calibration, std::int64_t count, std::uint64_t seed,
                           const std::string& method) {
  const std::int64_t n = calibration.size();
  if (n == 0) throw Error(method + ": the calibration (training) set is empty");
  auto gen = at::detail::createCPUGenerator(seed);
  const auto order = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  const auto kept = order.slice(0, 0, std::min(n, count));
  return {calibration.images.index_select(0, kept), calibration.labels.defined()
                                                        ? calibration.labels.index_select(0, kept)
                                                        : torch::Tensor()};
}

torch::Tensor calibration_sample(const Dataset& calibration, std::int64_t count, std::uint64_t seed,
                                 const std::string& method) {
  return calibration_subset(calibration, count, seed, method).images;
}

PtqSpec ptq_spec(Scheme scheme, const Options& o, const QuantizeContext& ctx) {
  PtqSpec spec;
  spec.scheme = scheme;
  spec.rules = ctx.rules;
  spec.config = ctx.config;
  spec.per_channel =
      (!o.has("per_channel") || o.get<bool>("per_channel")) && ctx.engine.per_channel_weights;
  if (o.has("weight_range") && o.get<std::string>("weight_range") == "mse")
    spec.weight_range = WeightRange::mse;
  spec.sequential_mse = o.has("weight_range") && o.get<std::string>("weight_range") == "seq_mse";
  spec.narrow_range = o.has("narrow_range") && o.get<bool>("narrow_range");
  spec.output_cross_entropy =
      o.has("output_range") && o.get<std::string>("output_range") == "cross_entropy";
  spec.batch_size = ctx.batch_size;
  spec.reduce_range = ctx.engine.reduce_range;
  spec.cache = ctx.calibration_cache;
  spec.model_id = ctx.model_id;
  spec.equalize = o.has("equalize") && o.get<bool>("equalize");
  spec.bias_correction = o.has("bias_correction") && o.get<bool>("bias_correction");
  if (o.has("rounding")) {
    spec.adaround = o.get<std::string>("rounding") == "adaround";
    spec.adaround_iterations = static_cast<int>(o.get<std::int64_t>("adaround_iterations"));
    spec.adaround_batches = o.get<std::int64_t>("adaround_batches");
    spec.adaround_weight = o.get<double>("adaround_weight");
  }
  return spec;
}

std::string qparams_source(const Graph& g, std::string name) {
  while (!op_info(g.node(name).op).own_grid) name = g.node(name).inputs.at(0);
  return name;
}

std::map<std::string, int> activation_sites(const Graph& g, const LayerSelection& selection) {
  std::map<std::string, int> sites;
  for (const auto& [name, bits] : selection.layers) {
    if (bits.output > 0) sites[name] = std::max(sites[name], bits.output);
    if (bits.input == 0) continue;
    const std::string producer = qparams_source(g, g.node(name).inputs.at(0));
    sites[producer] = std::max(sites[producer], bits.input);
  }
  // quantized::add takes two quantized inputs and requantizes its sum: an
  // add of two quantized tensors gets output qparams even when no layer reads it.
  auto quantized_out = [&](const std::string& name) {
    auto it = sites.find(qparams_source(g, name));
    return it == sites.end() ? 0 : it->second;
  };
  for (const auto& n : g.nodes())
    if (n.op == Op::add && !sites.count(n.name)) {
      const int a = quantized_out(n.inputs[0]), b = quantized_out(n.inputs[1]);
      if (a > 0 && b > 0) sites[n.name] = std::max(a, b);
    }
  return sites;
}

QLayer quantize_weight(const torch::Tensor& w, const torch::Tensor& b, int bits, bool per_channel,
                       WeightRange range, bool narrow) {
  QLayer l;
  const int axis = per_channel ? 0 : -1;
  l.weight = bits == 1 ? binary_qparams(w, axis) : weight_qparams(w, bits, axis, range, narrow);
  l.codes = quantize_codes(w, l.weight);
  l.bias = b;
  return l;
}

QuantizedModel post_training_quantize(GraphModule trained, const PtqSpec& spec,
                                      const Dataset& calibration) {
  if (spec.scheme == Scheme::static_ && spec.calibration_batches <= 0)
    throw Error(
        "[quantizer] calibration_batches = 0: static quantization fixes every activation's "
        "scale and zero point from calibration data, so with no calibration batch every "
        "scale would stay at its default and accuracy collapses; use at least 1 (default 32)");
  QuantizedModel q;
  q.scheme = spec.scheme;
  q.float_module = fuse(trained);
  if (spec.equalize) {
    const Equalization eq = cross_layer_equalize(q.float_module);
    q.notes.push_back(fmt::format("cross-layer equalization: {} pair(s) rescaled ({})",
                                  eq.pairs.size(), fmt::join(eq.pairs, ", ")));
    for (const auto& why : eq.skipped) q.notes.push_back("cross-layer equalization skipped " + why);
  }
  const Graph& g = q.graph();
  const LayerSelection selection = select_layers(g, spec.config, spec.config_key, spec.rules);
  q.float_layers = selection.float_layers;
  for (const auto& [name, bits] : selection.layers) {
    if (bits.weight == 0)
      throw Error(
          fmt::format("{}: layer '{}' has no weight bits; {} quantization quantizes weights "
                      "(add \"weight\" to its quant_types)",
                      spec.config_key, name, to_string(spec.scheme)));
    q.layers[name] = quantize_weight(layer_parameter(q.float_module, name, "weight"),
                                     layer_parameter(q.float_module, name, "bias"), bits.weight,
                                     spec.per_channel, spec.weight_range, spec.narrow_range);
    q.layers[name].activation_bits = bits.input;
  }
  if (spec.scheme == Scheme::static_) calibrate_activations(q, selection, spec, calibration);
  if (spec.output_cross_entropy && spec.scheme == Scheme::static_) {
    const auto images = calibration_sample(calibration, kRangeSearchBatches * spec.batch_size, 4248,
                                           "output range");
    for (auto& note : search_output_ranges(q, images)) q.notes.push_back(std::move(note));
  }
  // The weight range search, AdaRound and bias correction fit each layer to
  // the input the quantized model gives it, activation grids included: they
  // come after calibration, which sees only the float model, so it is still
  // shared across widths.
  if (spec.sequential_mse && spec.scheme == Scheme::static_) {
    const auto images = calibration_sample(calibration, kRangeSearchBatches * spec.batch_size, 4246,
                                           "sequential MSE");
    for (auto& note : search_weight_ranges(q, images)) q.notes.push_back(std::move(note));
  }
  if (spec.adaround) {
    AdaRoundOptions o;
    o.iterations = spec.adaround_iterations;
    o.samples = spec.adaround_batches * spec.batch_size;
    o.regularization = spec.adaround_weight;
    for (auto& note : adaround(q, calibration, o)) q.notes.push_back(std::move(note));
  }
  return corrected(std::move(q), spec, calibration);
}

}  // namespace qlab
