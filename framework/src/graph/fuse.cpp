#include <qlab/error.hpp>
#include <qlab/quant/passes.hpp>

namespace qlab {
const Node* sole_consumer(const Graph& g, const std::string& name) {
  const Node* found = nullptr;
  for (const auto& n : g.nodes())
    for (const auto& in : n.inputs)
      if (in == name) {
        if (found) return nullptr;
        found = &n;
      }
  for (const auto& o : g.outputs())
    if (o == name) return nullptr;
  return found;
}

namespace {

template <class T>
std::shared_ptr<T> layer_as(const GraphModule& m, const std::string& name) {
  auto l = std::dynamic_pointer_cast<T>(m->layer(name));
  QLAB_CHECK(l != nullptr, "no layer of the expected type for " + name);
  return l;
}

}  // namespace

std::map<std::string, FusionGroup> fusion_groups(const Graph& g) {
  std::map<std::string, FusionGroup> groups;
  for (const auto& n : g.nodes()) {
    if (!op_info(n.op).weighted) continue;
    FusionGroup& group = groups[n.name];
    const Node* next = sole_consumer(g, n.name);
    if (n.op == Op::conv2d && next && next->op == Op::batch_norm2d) {
      group.batch_norm = next->name;
      next = sole_consumer(g, next->name);
    }
    if (n.attrs.activation == Activation::none && next &&
        op_info(next->op).fuses_as != Activation::none)
      group.activation = next->name;
  }
  return groups;
}

GraphModule fuse(GraphModule trained) {
  const Graph& g = trained->graph();
  const auto groups = fusion_groups(g);
  Graph out(g.type_name());
  for (const auto& [prefix, type] : g.group_types()) out.group_type(prefix, type);
  std::map<std::string, std::string> produced_by;  // removed node -> node now producing it
  std::map<std::string, std::string> folded_bn;    // conv -> batch norm folded into it
  for (const auto& node : g.nodes()) {
    if (produced_by.count(node.name)) continue;
    Node n = node;
    for (auto& in : n.inputs)
      if (produced_by.count(in)) in = produced_by[in];
    if (auto it = groups.find(n.name); it != groups.end()) {
      if (!it->second.batch_norm.empty()) {
        folded_bn[n.name] = it->second.batch_norm;
        n.attrs.bias = true;
        produced_by[it->second.batch_norm] = n.name;
      }
      if (!it->second.activation.empty()) {
        n.attrs.activation = op_info(g.node(it->second.activation).op).fuses_as;
        produced_by[it->second.activation] = n.name;
      }
    }
    out.append(std::move(n));
  }
  std::vector<std::string> outputs;
  for (auto o : g.outputs()) outputs.push_back(produced_by.count(o) ? produced_by[o] : o);
  out.set_outputs(outputs);

  GraphModule fused(out);
  torch::NoGradGuard no_grad;
  for (const auto& n : out.nodes()) {
    if (n.op == Op::conv2d) {
      auto src = layer_as<torch::nn::Conv2dImpl>(trained, n.name);
      auto dst = layer_as<torch::nn::Conv2dImpl>(fused, n.name);
      auto w = src->weight.detach().clone();
      auto b = src->bias.defined() ? src->bias.detach().clone() : torch::zeros({w.size(0)});
      if (folded_bn.count(n.name)) {
        auto bn = layer_as<torch::nn::BatchNorm2dImpl>(trained, folded_bn[n.name]);
        const auto factor = bn->weight.detach() / (bn->running_var + bn->options.eps()).sqrt();
        w = w * factor.view({-1, 1, 1, 1});
        b = (b - bn->running_mean) * factor + bn->bias.detach();
      }
      dst->weight.copy_(w);
      if (dst->bias.defined()) dst->bias.copy_(b);
    } else if (n.op == Op::linear) {
      auto src = layer_as<torch::nn::LinearImpl>(trained, n.name);
      auto dst = layer_as<torch::nn::LinearImpl>(fused, n.name);
      dst->weight.copy_(src->weight);
      if (dst->bias.defined()) dst->bias.copy_(src->bias);
    } else if (n.op == Op::batch_norm2d) {
      auto src = layer_as<torch::nn::BatchNorm2dImpl>(trained, n.name);
      auto dst = layer_as<torch::nn::BatchNorm2dImpl>(fused, n.name);
      dst->weight.copy_(src->weight);
      dst->bias.copy_(src->bias);
      dst->running_mean.copy_(src->running_mean);
      dst->running_var.copy_(src->running_var);
    }
  }
  fused->eval();
  return fused;
}

}  // namespace qlab
