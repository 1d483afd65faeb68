#include <qlab/error.hpp>
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab {

namespace {

Node make(const std::string& name, Op op, std::vector<std::string> inputs, Attrs attrs = {}) {
  Node n;
  n.name = name;
  n.op = op;
  n.inputs = std::move(inputs);
  n.attrs = attrs;
  return n;
}

}  // namespace

std::string Graph::append(Node node) {
  if (node.name.empty() || node.name.front() == '.' || node.name.back() == '.')
    throw Error(fmt::format("graph {}: invalid node name '{}'", type_name_, node.name));
  if (index_.count(node.name))
    throw Error(fmt::format("graph {}: node '{}' defined twice", type_name_, node.name));
  if (node.inputs.size() != op_info(node.op).arity)
    throw Error(fmt::format("graph {}: node '{}' ({}) takes {} input(s), got {}", type_name_,
                            node.name, to_string(node.op), op_info(node.op).arity,
                            node.inputs.size()));
  for (const auto& in : node.inputs)
    if (!index_.count(in))
      throw Error(fmt::format("graph {}: node '{}' reads '{}', which is not an earlier node",
                              type_name_, node.name, in));
  if (node.op == Op::input && !nodes_.empty() && nodes_.front().op == Op::input)
    throw Error(fmt::format("graph {}: only one input node is supported", type_name_));
  index_[node.name] = nodes_.size();
  nodes_.push_back(std::move(node));
  return nodes_.back().name;
}

std::string Graph::input(const std::string& name, Shape shape) {
  Attrs a;
  a.shape = std::move(shape);
  auto n = make(name, Op::input, {}, a);
  n.printed = false;
  return append(std::move(n));
}

std::string Graph::conv2d(const std::string& name, const std::string& x, std::int64_t in,
                          std::int64_t out, std::int64_t kernel, std::int64_t stride,
                          std::int64_t padding, std::int64_t groups, bool bias) {
  Attrs a;
  a.in = in;
  a.out = out;
  a.kernel = kernel;
  a.stride = stride;
  a.padding = padding;
  a.groups = groups;
  a.bias = bias;
  return append(make(name, Op::conv2d, {x}, a));
}

std::string Graph::linear(const std::string& name, const std::string& x, std::int64_t in,
                          std::int64_t out, bool bias) {
  Attrs a;
  a.in = in;
  a.out = out;
  a.bias = bias;
  return append(make(name, Op::linear, {x}, a));
}

std::string Graph::batch_norm2d(const std::string& name, const std::string& x,
                                std::int64_t features) {
  Attrs a;
  a.in = features;
  return append(make(name, Op::batch_norm2d, {x}, a));
}

std::string Graph::relu(const std::string& name, const std::string& x) {
  return append(make(name, Op::relu, {x}));
}
std::string Graph::relu6(const std::string& name, const std::string& x) {
  return append(make(name, Op::relu6, {x}));
}
std::string Graph::sigmoid(const std::string& name, const std::string& x) {
  return append(make(name, Op::sigmoid, {x}));
}

std::string Graph::max_pool2d(const std::string& name, const std::string& x, std::int64_t kernel,
                              std::int64_t stride) {
  Attrs a;
  a.kernel = kernel;
  a.stride = stride;
  return append(make(name, Op::max_pool2d, {x}, a));
}

std::string Graph::avg_pool2d(const std::string& name, const std::string& x, std::int64_t kernel,
                              std::int64_t stride) {
  Attrs a;
  a.kernel = kernel;
  a.stride = stride;
  return append(make(name, Op::avg_pool2d, {x}, a));
}

std::string Graph::adaptive_avg_pool2d(const std::string& name, const std::string& x,
                                       std::int64_t output_size) {
  Attrs a;
  a.output_size = output_size;
  return append(make(name, Op::adaptive_avg_pool2d, {x}, a));
}

std::string Graph::flatten(const std::string& name, const std::string& x) {
  return append(make(name, Op::flatten, {x}));
}

std::string Graph::dropout(const std::string& name, const std::string& x, double p) {
  Attrs a;
  a.p = p;
  return append(make(name, Op::dropout, {x}, a));
}

std::string Graph::add(const std::string& name, const std::string& a, const std::string& b) {
  auto n = make(name, Op::add, {a, b});
  n.printed = false;
  return append(std::move(n));
}

std::string Graph::reparameterize(const std::string& name, const std::string& mu,
                                  const std::string& logvar) {
  auto n = make(name, Op::reparameterize, {mu, logvar});
  n.printed = false;
  return append(std::move(n));
}

Graph& Graph::functional(const std::string& name) {
  auto it = index_.find(name);
  QLAB_CHECK(it != index_.end(), "no node " + name);
  nodes_[it->second].printed = false;
  return *this;
}

Graph& Graph::group_type(const std::string& prefix, std::string type_name) {
  group_types_[prefix] = std::move(type_name);
  return *this;
}

void Graph::set_outputs(std::vector<std::string> names) {
  for (const auto& n : names)
    if (!index_.count(n))
      throw Error(fmt::format("graph {}: output '{}' is not a node", type_name_, n));
  outputs_ = std::move(names);
}

const Node& Graph::node(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(fmt::format("graph {}: no node '{}'", type_name_, name));
  return nodes_[it->second];
}

const Shape& Graph::input_shape() const {
  if (nodes_.empty() || nodes_.front().op != Op::input)
    throw Error(fmt::format("graph {}: has no input node", type_name_));
  return nodes_.front().attrs.shape;
}

namespace {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

std::vector<LayerStats> Graph::stats() const {
  std::map<std::string, Shape> shapes;
  std::vector<LayerStats> out;
  for (const auto& n : nodes_) {
    LayerStats st;
    st.name = n.name;
    st.op = n.op;
    std::vector<Shape> in;
    if (n.inputs.empty()) in.push_back(input_shape());
    for (const auto& i : n.inputs) in.push_back(shapes.at(i));
    const std::string why = op_info(n.op).shape(n.attrs, in, st);
    if (!why.empty())
      throw Error(fmt::format("graph {}: node '{}' ({}) cannot take input of shape {}: {}",
                              type_name_, n.name, to_string(n.op), shape_str(in[0]), why));
    shapes[n.name] = st.output;
    out.push_back(std::move(st));
  }
  return out;
}

std::int64_t Graph::parameter_count() const {
  std::int64_t total = 0;
  for (const auto& s : stats()) total += s.params;
  return total;
}

std::int64_t Graph::mac_count() const {
  std::int64_t total = 0;
  for (const auto& s : stats()) total += s.macs;
  return total;
}

std::string Graph::signature() const {
  std::string sig = type_name_;
  for (const auto& n : nodes_) {
    const auto& a = n.attrs;
    sig += fmt::format(";{}={}({})[{},{},{},{},{},{},{},{},{}]", n.name, to_string(n.op),
                       fmt::join(n.inputs, ","), a.in, a.out, a.kernel, a.stride, a.padding,
                       a.groups, a.output_size, a.bias, static_cast<int>(a.activation));
  }
  if (!nodes_.empty() && nodes_.front().op == Op::input)
    sig += ";input" + shape_str(nodes_.front().attrs.shape);
  return sig;
}

}  // namespace qlab
