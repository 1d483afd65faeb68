#include <qlab/error.hpp>
#include <qlab/quant/config_list.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

namespace qlab {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "conv2d" or PyTorch's "Conv2d".
Op op_named(const std::string& name, const std::string& at, const ConfigRules& rules) {
  for (Op op : {Op::conv2d, Op::linear}) {
    if (lower(name) != to_string(op)) continue;
    if (!rules.op_types.count(op))
      throw Error(fmt::format("{} op_types: this quantizer cannot quantize {} layers{}", at, name,
                              rules.op_types_reason.empty() ? "" : ": " + rules.op_types_reason));
    return op;
  }
  throw Error(fmt::format("{} op_types: unknown op type '{}' (known: conv2d, linear)", at, name));
}

std::vector<std::string> strings(const nlohmann::json& v, const std::string& at) {
  if (!v.is_array())
    throw Error(fmt::format("{}: expected a list of strings, found {}", at, v.dump()));
  std::vector<std::string> out;
  for (const auto& s : v) {
    if (!s.is_string())
      throw Error(fmt::format("{}: expected a list of strings, found {}", at, v.dump()));
    out.push_back(s.get<std::string>());
  }
  return out;
}

int bits_value(const nlohmann::json& v, const std::string& at, const ConfigRules& rules) {
  if (!v.is_number_integer())
    throw Error(fmt::format("{}: expected an integer, found {}", at, v.dump()));
  const auto b = v.get<std::int64_t>();
  if (b < rules.min_bits || b > rules.max_bits)
    throw Error(fmt::format("{}: {} bits is out of range, expected between {} and {}", at, b,
                            rules.min_bits, rules.max_bits));
  return static_cast<int>(b);
}

int& bits_of(LayerBits& bits, const std::string& type) {
  return type == "weight" ? bits.weight : type == "input" ? bits.input : bits.output;
}

ConfigEntry parse_entry(const nlohmann::json& e, const std::string& at, const ConfigRules& rules) {
  if (!e.is_object()) throw Error(fmt::format("{}: expected a table, found {}", at, e.dump()));
  ConfigEntry entry;
  std::vector<std::string> types;
  for (const auto& [key, v] : e.items()) {
    if (key == "op_types") {
      for (const auto& name : strings(v, at + " op_types"))
        entry.op_types.insert(op_named(name, at, rules));
    } else if (key == "op_names") {
      entry.op_names = strings(v, at + " op_names");
    } else if (key == "exclude") {
      if (!v.is_boolean())
        throw Error(fmt::format("{} exclude: expected a boolean, found {}", at, v.dump()));
      entry.exclude = v.get<bool>();
    } else if (key == "quant_types") {
      types = strings(v, at + " quant_types");
      for (const auto& t : types)
        if (!rules.quant_types.count(t))
          throw Error(fmt::format("{} quant_types: '{}' is not one of: {}", at, t,
                                  fmt::join(rules.quant_types, ", ")));
    } else if (key != "quant_bits") {
      throw Error(
          fmt::format("{}: unknown key '{}' (known keys: exclude, op_names, op_types, quant_bits, "
                      "quant_types)",
                      at, key));
    }
  }
  if (entry.op_types.empty() && entry.op_names.empty())
    throw Error(
        fmt::format("{}: an entry needs op_types or op_names to say which layers it selects", at));
  if (entry.exclude) {
    if (e.contains("quant_types") || e.contains("quant_bits"))
      throw Error(fmt::format(
          "{}: an exclude entry keeps its layers float; drop quant_types and quant_bits", at));
    return entry;
  }
  if (types.empty())
    throw Error(fmt::format("{}: quant_types is required (weight, input, output)", at));
  if (!e.contains("quant_bits")) throw Error(fmt::format("{}: quant_bits is required", at));
  const auto& qb = e.at("quant_bits");
  if (qb.is_object()) {
    for (const auto& [type, v] : qb.items())
      if (std::find(types.begin(), types.end(), type) == types.end())
        throw Error(
            fmt::format("{} quant_bits: '{}' is not among this entry's quant_types", at, type));
    for (const auto& t : types) {
      if (!qb.contains(t)) throw Error(fmt::format("{} quant_bits: no bits for '{}'", at, t));
      bits_of(entry.bits, t) = bits_value(qb.at(t), fmt::format("{} quant_bits.{}", at, t), rules);
    }
  } else {
    const int b = bits_value(qb, at + " quant_bits", rules);
    for (const auto& t : types) bits_of(entry.bits, t) = b;
  }
  return entry;
}

}  // namespace

std::vector<ConfigEntry> parse_config_list(const nlohmann::json& list, const std::string& where,
                                           const ConfigRules& rules) {
  if (!list.is_array()) throw Error(fmt::format("{}: expected a list of tables", where));
  std::vector<ConfigEntry> out;
  for (std::size_t i = 0; i < list.size(); ++i)
    out.push_back(parse_entry(list[i], fmt::format("{}[{}]", where, i + 1), rules));
  return out;
}

std::vector<ConfigEntry> default_config_list(const ConfigRules& rules, LayerBits bits) {
  ConfigEntry e;
  e.op_types = rules.op_types;
  for (const char* t : {"weight", "input", "output"})
    if (!rules.quant_types.count(t)) bits_of(bits, t) = 0;
  e.bits = bits;
  return {e};
}

Schema& add_bit_options(Schema& s, const QuantizerCaps& caps) {
  const auto& r = caps.rules;
  std::vector<std::string> kinds;
  for (Op op : r.op_types) kinds.emplace_back(to_string(op));
  const std::string layers = fmt::format("{}", fmt::join(kinds, " and "));
  return s.integer("weight_bits", caps.weight_bits, caps.weight_help, r.min_bits, r.max_bits)
      .integer("activation_bits", caps.activation_bits, caps.activation_help,
               caps.float_activations ? 0 : r.min_bits, r.max_bits)
      .table_list("config", fmt::format("NNI-style list selecting {} layers and bits per {} "
                                        "(default: every {} layer at weight_bits/activation_bits)",
                                        layers, fmt::join(r.quant_types, "/"), layers));
}

std::vector<ConfigEntry> config_list_option(const Options& o, const ConfigRules& rules) {
  const auto list = o.get<TableList>("config");
  if (!list.entries.empty()) return parse_config_list(list.entries, "[quantizer] config", rules);
  const int w = static_cast<int>(o.get<std::int64_t>("weight_bits"));
  const int a =
      o.has("activation_bits") ? static_cast<int>(o.get<std::int64_t>("activation_bits")) : 0;
  return default_config_list(rules, {w, a, a});
}

LayerSelection select_layers(const Graph& graph, const std::vector<ConfigEntry>& entries,
                             const std::string& where, const ConfigRules& rules) {
  LayerSelection out;
  std::vector<const Node*> layers;
  for (const auto& n : graph.nodes()) {
    if (!op_info(n.op).weighted) continue;
    if (rules.op_types.count(n.op))
      layers.push_back(&n);
    else
      out.float_layers[n.name] = rules.op_types_reason;
  }
  for (std::size_t i = 0; i < entries.size(); ++i)
    for (const auto& name : entries[i].op_names)
      if (std::none_of(layers.begin(), layers.end(),
                       [&](const Node* n) { return n->name == name; })) {
        std::vector<std::string> names;
        for (const Node* n : layers) names.push_back(n->name);
        throw Error(
            fmt::format("{}[{}] op_names: no layer this quantizer can quantize is named '{}' "
                        "(those layers: {})",
                        where, i + 1, name, fmt::join(names, ", ")));
      }
  for (const Node* n : layers) {
    const ConfigEntry* last = nullptr;
    std::size_t last_index = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      const bool type_ok = e.op_types.empty() || e.op_types.count(n->op);
      const bool name_ok = e.op_names.empty() || std::find(e.op_names.begin(), e.op_names.end(),
                                                           n->name) != e.op_names.end();
      if (type_ok && name_ok) {
        last = &e;
        last_index = i + 1;
      }
    }
    if (!last)
      out.float_layers[n->name] = "matched by no config entry";
    else if (last->exclude)
      out.float_layers[n->name] = fmt::format("excluded by config entry {}", last_index);
    else if (last->bits == LayerBits{})
      out.float_layers[n->name] = "its config entry quantizes nothing";
    else
      out.layers[n->name] = last->bits;
  }
  return out;
}

}  // namespace qlab
