#include <qlab/error.hpp>
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab {

const char* to_string(Op op) {
  switch (op) {
    case Op::input:
      return "input";
    case Op::conv2d:
      return "conv2d";
    case Op::linear:
      return "linear";
    case Op::batch_norm2d:
      return "batch_norm2d";
    case Op::relu:
      return "relu";
    case Op::relu6:
      return "relu6";
    case Op::sigmoid:
      return "sigmoid";
    case Op::max_pool2d:
      return "max_pool2d";
    case Op::avg_pool2d:
      return "avg_pool2d";
    case Op::adaptive_avg_pool2d:
      return "adaptive_avg_pool2d";
    case Op::flatten:
      return "flatten";
    case Op::dropout:
      return "dropout";
    case Op::add:
      return "add";
    case Op::reparameterize:
      return "reparameterize";
  }
  return "?";
}

namespace {

std::size_t arity(Op op) {
  switch (op) {
    case Op::input:
      return 0;
    case Op::add:
    case Op::reparameterize:
      return 2;
    default:
      return 1;
  }
}

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
  if (node.inputs.size() != arity(node.op))
    throw Error(fmt::format("graph {}: node '{}' ({}) takes {} input(s), got {}", type_name_,
                            node.name, to_string(node.op), arity(node.op), node.inputs.size()));
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

std::int64_t pooled(std::int64_t size, std::int64_t kernel, std::int64_t stride,
                    std::int64_t padding) {
  return (size + 2 * padding - kernel) / stride + 1;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

std::vector<LayerStats> Graph::stats() const {
  std::map<std::string, Shape> shapes;
  std::vector<LayerStats> out;
  for (const auto& n : nodes_) {
    LayerStats st;
    st.name = n.name;
    st.op = n.op;
    const Shape in = n.inputs.empty() ? input_shape() : shapes.at(n.inputs[0]);
    const auto& a = n.attrs;
    auto bad = [&](const std::string& why) {
      return Error(fmt::format("graph {}: node '{}' ({}) cannot take input of shape {}: {}",
                               type_name_, n.name, to_string(n.op), shape_str(in), why));
    };
    auto need_chw = [&] {
      if (in.size() != 3) throw bad("expected a {C, H, W} feature map");
    };
    switch (n.op) {
      case Op::input:
        st.output = in;
        break;
      case Op::conv2d: {
        need_chw();
        if (in[0] != a.in) throw bad(fmt::format("expected {} channels", a.in));
        if (a.groups < 1 || a.in % a.groups || a.out % a.groups)
          throw bad(fmt::format("channels not divisible by groups={}", a.groups));
        const auto h = pooled(in[1], a.kernel, a.stride, a.padding);
        const auto w = pooled(in[2], a.kernel, a.stride, a.padding);
        if (h < 1 || w < 1) throw bad(fmt::format("a {0}x{0} kernel does not fit", a.kernel));
        st.output = {a.out, h, w};
        st.params = a.out * (a.in / a.groups) * a.kernel * a.kernel + (a.bias ? a.out : 0);
        st.macs = a.out * (a.in / a.groups) * a.kernel * a.kernel * h * w;
        break;
      }
      case Op::linear:
        if (in.size() != 1 || in[0] != a.in)
          throw bad(fmt::format("expected {} features (flatten first?)", a.in));
        st.output = {a.out};
        st.params = a.in * a.out + (a.bias ? a.out : 0);
        st.macs = a.in * a.out;
        break;
      case Op::batch_norm2d:
        need_chw();
        if (in[0] != a.in) throw bad(fmt::format("expected {} channels", a.in));
        st.output = in;
        st.params = 2 * a.in;
        break;
      case Op::max_pool2d:
      case Op::avg_pool2d: {
        need_chw();
        const auto h = pooled(in[1], a.kernel, a.stride, 0);
        const auto w = pooled(in[2], a.kernel, a.stride, 0);
        if (h < 1 || w < 1) throw bad(fmt::format("a {0}x{0} window does not fit", a.kernel));
        st.output = {in[0], h, w};
        break;
      }
      case Op::adaptive_avg_pool2d:
        need_chw();
        st.output = {in[0], a.output_size, a.output_size};
        break;
      case Op::flatten: {
        std::int64_t f = 1;
        for (auto d : in) f *= d;
        st.output = {f};
        break;
      }
      case Op::add:
      case Op::reparameterize: {
        const auto& other = shapes.at(n.inputs[1]);
        if (other != in) throw bad("the second input has shape " + shape_str(other));
        st.output = in;
        break;
      }
      case Op::relu:
      case Op::relu6:
      case Op::sigmoid:
      case Op::dropout:
        st.output = in;
        break;
    }
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
