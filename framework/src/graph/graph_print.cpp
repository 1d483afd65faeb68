// Graph::print(): the layout of PyTorch's `print(model)`, so reports show the
// architecture exactly as the seed reports do.
#include <qlab/plugin/graph.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace qlab {
namespace {

std::string layer_repr(const Node& n) {
  const auto& info = op_info(n.op);
  return info.repr ? info.repr(n.attrs) : info.name;
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
