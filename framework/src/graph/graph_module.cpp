#include <qlab/error.hpp>
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>

namespace qlab {
namespace {

// torch::nn::Module names may not contain dots, so "features.0" becomes a
// container "features" holding "0": parameter names then match PyTorch's.
std::shared_ptr<torch::nn::Module> container_for(torch::nn::Module& root, const std::string& path,
                                                 std::string& leaf) {
  torch::nn::Module* parent = &root;
  std::shared_ptr<torch::nn::Module> holder;
  std::size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    if (dot == std::string::npos) {
      leaf = path.substr(start);
      return holder;
    }
    const std::string key = path.substr(start, dot - start);
    auto children = parent->named_children();
    if (auto* found = children.find(key)) {
      holder = *found;
    } else {
      holder = parent->register_module(key, std::make_shared<torch::nn::Module>(key));
    }
    parent = holder.get();
    start = dot + 1;
  }
}

template <class Holder>
Holder attach(torch::nn::Module& root, const std::string& path, Holder layer) {
  std::string leaf;
  auto parent = container_for(root, path, leaf);
  return parent ? parent->register_module(leaf, layer) : root.register_module(leaf, layer);
}

}  // namespace

GraphModuleImpl::GraphModuleImpl(const Graph& graph) : graph_(graph) {
  graph_.stats();  // validates shapes before any parameter is allocated
  std::map<std::string, std::size_t> index;
  for (const auto& n : graph_.nodes()) {
    Step s;
    s.op = n.op;
    s.attrs = n.attrs;
    for (const auto& in : n.inputs) s.inputs.push_back(index.at(in));
    if (const auto make = op_info(n.op).layer) {
      s.layer = attach(*this, n.name, make(n.attrs));
      layers_[n.name] = s.layer;
    }
    index[n.name] = steps_.size();
    steps_.push_back(std::move(s));
  }
  for (const auto& o : graph_.output_nodes()) outputs_.push_back(index.at(o));
}

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input) {
  return forward(input, nullptr);
}

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input,
                                                    const NodeHook& hook) {
  return forward(input, hook, nullptr);
}

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input,
                                                    const NodeHook& hook,
                                                    const WeightHook& weights) {
  std::vector<torch::Tensor> v(steps_.size());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    OpCall call{s.attrs, {}, s.layer.get(), {}, is_training()};
    if (s.inputs.empty()) call.inputs.push_back(input);
    for (auto in : s.inputs) call.inputs.push_back(v[in]);
    if (weights && op_info(s.op).weighted)
      call.weight = weights(i, s.layer->named_parameters(false)["weight"]);
    v[i] = op_info(s.op).forward(call);
    if (hook) v[i] = hook(i, v[i]);
  }
  std::vector<torch::Tensor> out;
  out.reserve(outputs_.size());
  for (auto o : outputs_) out.push_back(v[o]);
  return out;
}

std::shared_ptr<torch::nn::Module> GraphModuleImpl::layer(const std::string& name) const {
  auto it = layers_.find(name);
  return it == layers_.end() ? nullptr : it->second;
}

torch::Tensor layer_parameter(const GraphModule& module, const std::string& layer,
                              const std::string& key) {
  const auto* p = module->layer(layer)->named_parameters(false).find(key);
  return p ? p->detach() : torch::Tensor();
}

GraphModule clone_module(const GraphModule& module) {
  GraphModule copy(module->graph());
  torch::NoGradGuard no_grad;
  auto params = module->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().copy_(params[p.key()]);
  auto buffers = module->named_buffers();
  for (auto& b : copy->named_buffers()) b.value().copy_(buffers[b.key()]);
  copy->eval();
  return copy;
}

}  // namespace qlab
