// The float model and the model being quantized, run side by side: the
// layer-by-layer methods (AdaRound, bias correction) each need a layer's
// input in both, with every earlier layer already done.
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/ptq_methods.hpp>

namespace qlab {
namespace {

// Images per slice. Activations are kept as slices, never as one tensor of
// the whole sample: a slice stays under glibc's mmap threshold, so its
// memory is reused, where a whole-sample tensor would be mapped and
// faulted in afresh at every node (measured: 5x the time on MobileNetV2).
constexpr std::int64_t kSlice = 128;

Slices forward(const Node& n, torch::nn::Module* layer, const torch::Tensor& weight,
               const std::vector<const Slices*>& inputs) {
  Slices out;
  for (std::size_t k = 0; k < inputs.at(0)->size(); ++k) {
    OpCall call{n.attrs, {}, layer, weight, false};
    for (const Slices* in : inputs) call.inputs.push_back(in->at(k));
    out.push_back(op_info(n.op).forward(call));
  }
  return out;
}

}  // namespace

void walk_two_streams(QuantizedModel& q, const torch::Tensor& images, const LayerVisit& visit) {
  const GraphModule& m = q.float_module;
  const auto& activations = q.activations;
  const Graph& g = m->graph();
  const auto& nodes = g.nodes();
  // Where the quantized model's activations land on a grid: each observed
  // output, and an average pooling rounded back onto its input's grid.
  std::vector<const QParams*> grid(nodes.size(), nullptr);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::string name = op_info(nodes[i].op).rounds_to_input_grid
                                 ? qparams_source(g, nodes[i].name)
                                 : nodes[i].name;
    if (auto it = activations.find(name); it != activations.end()) grid[i] = &it->second;
  }
  std::map<std::string, std::size_t> index, last_read;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    index[nodes[i].name] = i;
    for (const auto& in : nodes[i].inputs) last_read[in] = i;
  }
  Slices sample;
  for (std::int64_t start = 0; start < images.size(0); start += kSlice)
    sample.push_back(images.slice(0, start, start + kSlice));
  std::vector<Slices> fp(nodes.size()), qt(nodes.size());
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    auto* layer = m->layer(n.name).get();
    std::vector<const Slices*> f_in, q_in;
    if (n.inputs.empty()) f_in.push_back(&sample), q_in.push_back(&sample);
    for (const auto& in : n.inputs) {
      f_in.push_back(&fp[index.at(in)]);
      q_in.push_back(&qt[index.at(in)]);
    }
    fp[i] = forward(n, layer, {}, f_in);
    torch::Tensor w;
    if (auto it = q.layers.find(n.name); it != q.layers.end()) {
      {
        // A visit may learn (AdaRound): gradients are its business.
        torch::AutoGradMode grad(true);
        visit(n, it->second, *f_in.at(0), *q_in.at(0));
      }
      w = dequantize_codes(it->second.codes, it->second.weight).to(torch::kFloat);
    }
    qt[i] = forward(n, layer, w, q_in);
    if (grid[i]) {
      // ATen's kernel: the same grid, several times faster than
      // quantize_codes' int64 round trip over a whole sample.
      const double scale = grid[i]->scale.item<double>();
      const auto zero = grid[i]->zero_point.item<std::int64_t>();
      for (auto& part : qt[i])
        part =
            torch::fake_quantize_per_tensor_affine(part, scale, zero, grid[i]->qmin, grid[i]->qmax);
    }
    for (const auto& in : n.inputs)
      if (last_read.at(in) == i) {
        fp[index.at(in)].clear();
        qt[index.at(in)].clear();
      }
  }
}

}  // namespace qlab
