// Graph::print(): the layout of PyTorch's `print(model)`, so reports show the
// architecture exactly as the seed reports do.
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace qlab {
namespace {

// A fused activation prints like PyTorch's intrinsic modules: ConvReLU2d, LinearReLU.
const char* fused(const Attrs& a) {
  switch (a.activation) {
    case Activation::relu:
      return "ReLU";
    case Activation::relu6:
      return "ReLU6";
    case Activation::none:
      break;
  }
  return "";
}

std::string layer_repr(const Node& n) {
  const auto& a = n.attrs;
  switch (n.op) {
    case Op::conv2d: {
      std::string s = fmt::format("Conv{}2d({}, {}, kernel_size=({}, {}), stride=({}, {})",
                                  fused(a), a.in, a.out, a.kernel, a.kernel, a.stride, a.stride);
      if (a.padding) s += fmt::format(", padding=({}, {})", a.padding, a.padding);
      if (a.groups != 1) s += fmt::format(", groups={}", a.groups);
      if (!a.bias) s += ", bias=False";
      return s + ")";
    }
    case Op::linear:
      return fmt::format("Linear{}(in_features={}, out_features={}, bias={})", fused(a), a.in,
                         a.out, a.bias ? "True" : "False");
    case Op::batch_norm2d:
      return fmt::format(
          "BatchNorm2d({}, eps={}, momentum={}, affine=True, "
          "track_running_stats=True)",
          a.in, a.eps == 1e-5 ? std::string("1e-05") : fmt::format("{}", a.eps), a.momentum);
    case Op::relu:
      return "ReLU()";
    case Op::relu6:
      return "ReLU6()";
    case Op::sigmoid:
      return "Sigmoid()";
    case Op::max_pool2d:
      return fmt::format(
          "MaxPool2d(kernel_size={}, stride={}, padding=0, dilation=1, "
          "ceil_mode=False)",
          a.kernel, a.stride);
    case Op::avg_pool2d:
      return fmt::format("AvgPool2d(kernel_size={}, stride={}, padding=0)", a.kernel, a.stride);
    case Op::adaptive_avg_pool2d:
      return fmt::format("AdaptiveAvgPool2d(output_size=({0}, {0}))", a.output_size);
    case Op::flatten:
      return "Flatten(start_dim=1, end_dim=-1)";
    case Op::dropout:
      return fmt::format("Dropout(p={}, inplace=False)", a.p);
    case Op::input:
    case Op::add:
    case Op::reparameterize:
      break;
  }
  return to_string(n.op);
}

struct Tree {
  const Node* leaf = nullptr;
  std::vector<std::pair<std::string, std::unique_ptr<Tree>>> children;

  Tree& child(const std::string& key) {
    for (auto& [k, t] : children)
      if (k == key) return *t;
    children.emplace_back(key, std::make_unique<Tree>());
    return *children.back().second;
  }
};

bool all_numeric(const Tree& t) {
  return std::all_of(t.children.begin(), t.children.end(), [](const auto& c) {
    return std::all_of(c.first.begin(), c.first.end(),
                       [](unsigned char ch) { return std::isdigit(ch); });
  });
}

void render(const Tree& t, const std::string& prefix, const std::string& type_name,
            const std::map<std::string, std::string>& types, int depth, std::string& out) {
  out += type_name + "(\n";
  const std::string indent(static_cast<std::size_t>(2 * (depth + 1)), ' ');
  for (const auto& [key, sub] : t.children) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    out += indent + "(" + key + "): ";
    if (sub->leaf && sub->children.empty()) {
      out += layer_repr(*sub->leaf) + "\n";
    } else {
      auto it = types.find(path);
      const std::string sub_type = it != types.end()   ? it->second
                                   : all_numeric(*sub) ? "Sequential"
                                                       : "Module";
      render(*sub, path, sub_type, types, depth + 1, out);
    }
  }
  out += std::string(static_cast<std::size_t>(2 * depth), ' ') + ")\n";
}

}  // namespace

std::string Graph::print() const {
  Tree root;
  for (const auto& n : nodes_) {
    if (!n.printed) continue;
    Tree* t = &root;
    std::size_t start = 0;
    while (true) {
      auto dot = n.name.find('.', start);
      t = &t->child(n.name.substr(start, dot == std::string::npos ? dot : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    t->leaf = &n;
  }
  std::string out;
  render(root, "", type_name_, group_types_, 0, out);
  out.pop_back();  // PyTorch prints no newline after the closing parenthesis
  return out;
}

}  // namespace qlab
