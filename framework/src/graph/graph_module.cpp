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
    const auto& a = n.attrs;
    switch (n.op) {
      case Op::conv2d:
        s.conv = attach(*this, n.name,
                        torch::nn::Conv2d(torch::nn::Conv2dOptions(a.in, a.out, a.kernel)
                                              .stride(a.stride)
                                              .padding(a.padding)
                                              .groups(a.groups)
                                              .bias(a.bias)));
        layers_[n.name] = s.conv.ptr();
        break;
      case Op::linear:
        s.linear = attach(*this, n.name,
                          torch::nn::Linear(torch::nn::LinearOptions(a.in, a.out).bias(a.bias)));
        layers_[n.name] = s.linear.ptr();
        break;
      case Op::batch_norm2d:
        s.bn = attach(*this, n.name,
                      torch::nn::BatchNorm2d(
                          torch::nn::BatchNorm2dOptions(a.in).eps(a.eps).momentum(a.momentum)));
        layers_[n.name] = s.bn.ptr();
        break;
      default:
        break;
    }
    index[n.name] = steps_.size();
    steps_.push_back(std::move(s));
  }
  std::vector<std::string> outs = graph_.outputs();
  if (outs.empty()) outs.push_back(graph_.nodes().back().name);
  for (const auto& o : outs) outputs_.push_back(index.at(o));
}

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input) {
  return forward(input, nullptr);
}

namespace {

torch::Tensor activate(torch::Tensor x, Activation a) {
  switch (a) {
    case Activation::none:
      return x;
    case Activation::relu:
      return torch::relu(x);
    case Activation::relu6:
      return torch::hardtanh(x, 0.0, 6.0);
  }
  return x;
}

}  // namespace

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input,
                                                    const NodeHook& hook) {
  return forward(input, hook, nullptr);
}

std::vector<torch::Tensor> GraphModuleImpl::forward(const torch::Tensor& input,
                                                    const NodeHook& hook,
                                                    const WeightHook& weights) {
  namespace F = torch::nn::functional;
  std::vector<torch::Tensor> v(steps_.size());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    const auto& a = s.attrs;
    const torch::Tensor& x = s.inputs.empty() ? input : v[s.inputs[0]];
    switch (s.op) {
      case Op::input:
        v[i] = input;
        break;
      case Op::conv2d:
        v[i] = activate(
            weights ? torch::conv2d(x, weights(i, s.conv->weight), s.conv->bias,
                                    {a.stride, a.stride}, {a.padding, a.padding}, {1, 1}, a.groups)
                    : s.conv->forward(x),
            a.activation);
        break;
      case Op::linear:
        v[i] = activate(weights ? torch::linear(x, weights(i, s.linear->weight), s.linear->bias)
                                : s.linear->forward(x),
                        a.activation);
        break;
      case Op::batch_norm2d:
        v[i] = s.bn->forward(x);
        break;
      case Op::relu:
        v[i] = torch::relu(x);
        break;
      case Op::relu6:
        v[i] = torch::hardtanh(x, 0.0, 6.0);
        break;
      case Op::sigmoid:
        v[i] = torch::sigmoid(x);
        break;
      case Op::max_pool2d:
        v[i] = torch::max_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride}, {0, 0}, {1, 1});
        break;
      case Op::avg_pool2d:
        v[i] = torch::avg_pool2d(x, {a.kernel, a.kernel}, {a.stride, a.stride});
        break;
      case Op::adaptive_avg_pool2d:
        v[i] = torch::adaptive_avg_pool2d(x, {a.output_size, a.output_size});
        break;
      case Op::flatten:
        v[i] = x.flatten(1);
        break;
      case Op::dropout:
        v[i] = F::dropout(x, F::DropoutFuncOptions().p(a.p).training(is_training()));
        break;
      case Op::add:
        v[i] = x + v[s.inputs[1]];
        break;
      case Op::reparameterize:
        v[i] = x + torch::randn_like(x) * torch::exp(0.5 * v[s.inputs[1]]);
        break;
    }
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
