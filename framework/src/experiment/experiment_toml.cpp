// TOML front end: turns an experiment file into RawSections with the line
// and column of every value, so validation errors can point at them.
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <fstream>
#include <sstream>

namespace qlab {
namespace {

std::string type_name(const toml::node& node) {
  std::ostringstream s;
  s << node.type();
  return s.str();
}

SourceLoc loc(const toml::source_region& r, const std::string& file) {
  return {file, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

Value to_value(const toml::node& node, const std::string& section, const std::string& key,
               const std::string& file) {
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_integer()) return v->get();
  if (auto v = node.as_floating_point()) return v->get();
  if (auto v = node.as_string()) return v->get();
  if (auto arr = node.as_array(); arr && !arr->empty() && arr->is_array_of_tables()) {
    // [[quantizer.config]] entries: toml++ writes them as JSON, which the
    // plugin that declares the list checks field by field.
    std::ostringstream json;
    json << toml::json_formatter{*arr};
    return TableList{nlohmann::json::parse(json.str())};
  }
  if (auto arr = node.as_array(); arr && !arr->empty() && (*arr)[0].is_number()) {
    std::vector<double> out;
    for (const auto& item : *arr) {
      if (auto i = item.as_integer())
        out.push_back(static_cast<double>(i->get()));
      else if (auto d = item.as_floating_point())
        out.push_back(d->get());
      else
        throw Error(fmt::format("{}: [{}] {}: a list of numbers with a {} in it",
                                loc(item.source(), file).str(), section, key, type_name(item)));
    }
    return out;
  }
  if (auto arr = node.as_array()) {
    std::vector<std::string> out;
    for (const auto& item : *arr) {
      auto s = item.as_string();
      // Options take lists of names or of numbers; anything else is a
      // scalar option written as a list.
      if (!s)
        throw Error(
            fmt::format("{}: [{}] {}: found a list of {} values; options take a single value or a "
                        "list of strings or numbers",
                        loc(node.source(), file).str(), section, key, type_name(item)));
      out.push_back(s->get());
    }
    return out;
  }
  throw Error(fmt::format("{}: [{}] {}: expected a value, found a {}",
                          loc(node.source(), file).str(), section, key, type_name(node)));
}

// Hands `v` to `add` as the TOML value it becomes (tables and arrays nest).
template <class Add>
void add_toml(const nlohmann::json& v, Add&& add);

toml::table toml_table(const nlohmann::json& object) {
  toml::table t;
  for (const auto& [k, v] : object.items())
    add_toml(v, [&, &k = k](auto&& x) { t.insert(k, std::forward<decltype(x)>(x)); });
  return t;
}

toml::array toml_list(const nlohmann::json& list) {
  toml::array a;
  for (const auto& v : list)
    add_toml(v, [&](auto&& x) { a.push_back(std::forward<decltype(x)>(x)); });
  return a;
}

template <class Add>
void add_toml(const nlohmann::json& v, Add&& add) {
  if (v.is_object())
    add(toml_table(v));
  else if (v.is_array())
    add(toml_list(v));
  else if (v.is_boolean())
    add(v.get<bool>());
  else if (v.is_number_integer())
    add(v.get<std::int64_t>());
  else if (v.is_number())
    add(v.get<double>());
  else if (v.is_string())
    add(v.get<std::string>());
}

}  // namespace

std::string to_toml(const Experiment& ex) {
  toml::table root;
  for (const RawSection* s :
       {&ex.model, &ex.dataset, &ex.train, &ex.quantizer, &ex.backend, &ex.metrics}) {
    nlohmann::json section = nlohmann::json::object();
    for (const auto& [key, raw] : s->values) section[key] = to_json(raw.value);
    if (!section.empty()) root.insert(s->name, toml_table(section));
  }
  // Only escaped "basic" strings: TOML drops a newline right after ''' or
  // """, so toml++'s multi-line strings would read "\nx" back as "x".
  constexpr auto flags =
      toml::toml_formatter::default_flags &
      ~(toml::format_flags::allow_multi_line_strings | toml::format_flags::allow_literal_strings);
  std::ostringstream out;
  out << toml::toml_formatter{root, flags};
  return out.str();
}

Experiment parse_experiment(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw Error(
        fmt::format("{}: TOML syntax error: {}", loc(e.source(), source).str(), e.description()));
  }
  Experiment ex;
  ex.source = source;
  std::map<std::string, RawSection*> sections{
      {"model", &ex.model},         {"dataset", &ex.dataset}, {"train", &ex.train},
      {"quantizer", &ex.quantizer}, {"backend", &ex.backend}, {"metrics", &ex.metrics}};
  for (auto& [name, section] : sections) {
    section->name = name;
    section->where = {source, 0, 0};
  }
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    auto it = sections.find(key);
    if (it == sections.end())
      throw Error(
          fmt::format("{}: unknown section [{}] (known: backend, dataset, metrics, model, "
                      "quantizer, train)",
                      loc(node.source(), source).str(), key));
    const auto* table = node.as_table();
    if (!table)
      throw Error(fmt::format("{}: '{}' must be a section [{}], not a value",
                              loc(node.source(), source).str(), key, key));
    RawSection& section = *it->second;
    section.where = loc(table->source(), source);
    for (const auto& [vk, value] : *table) {
      const std::string vkey(vk.str());
      section.values[vkey] = {to_value(value, key, vkey, source), loc(value.source(), source)};
    }
  }
  return ex;
}

Experiment load_experiment(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open experiment file", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_experiment(buf.str(), path);
}

}  // namespace qlab
