#include <qlab/error.hpp>
#include <qlab/plugin/options.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace qlab {

const char* to_string(ValueType type) {
  switch (type) {
    case ValueType::boolean:
      return "boolean";
    case ValueType::integer:
      return "integer";
    case ValueType::number:
      return "number";
    case ValueType::string:
      return "string";
    case ValueType::string_list:
      return "list of strings";
    case ValueType::table_list:
      return "list of tables";
    case ValueType::number_list:
      return "list of numbers";
  }
  return "?";
}

ValueType type_of(const Value& value) { return static_cast<ValueType>(value.index()); }

std::string describe(const Value& value) {
  struct Visitor {
    std::string operator()(bool b) const { return fmt::format("boolean {}", b); }
    std::string operator()(std::int64_t i) const { return fmt::format("integer {}", i); }
    std::string operator()(double d) const { return fmt::format("number {}", d); }
    std::string operator()(const std::string& s) const { return fmt::format("string \"{}\"", s); }
    std::string operator()(const std::vector<std::string>& l) const {
      return fmt::format("list [{}]", fmt::join(l, ", "));
    }
    std::string operator()(const TableList& t) const {
      return fmt::format("list of {} tables", t.entries.size());
    }
    std::string operator()(const std::vector<double>& l) const {
      return fmt::format("list [{}]", fmt::join(l, ", "));
    }
  };
  return std::visit(Visitor{}, value);
}

nlohmann::json to_json(const Value& value) {
  return std::visit(
      [](const auto& x) -> nlohmann::json {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, TableList>)
          return x.entries;
        else
          return x;
      },
      value);
}

std::string SourceLoc::str() const {
  if (line <= 0) return file;
  if (column <= 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, column);
}

Schema& Schema::add(OptionSpec spec) {
  QLAB_CHECK(find(spec.name) == nullptr, "option declared twice: " + spec.name);
  QLAB_CHECK(type_of(spec.default_value) == spec.type, "default of wrong type: " + spec.name);
  specs_.push_back(std::move(spec));
  return *this;
}

Schema& Schema::integer(std::string name, std::int64_t def, std::string help,
                        std::optional<double> min, std::optional<double> max) {
  return add({std::move(name), ValueType::integer, def, std::move(help), min, max, {}});
}

Schema& Schema::number(std::string name, double def, std::string help, std::optional<double> min,
                       std::optional<double> max) {
  return add({std::move(name), ValueType::number, def, std::move(help), min, max, {}});
}

Schema& Schema::boolean(std::string name, bool def, std::string help) {
  return add({std::move(name), ValueType::boolean, def, std::move(help), {}, {}, {}});
}

Schema& Schema::string(std::string name, std::string def, std::string help,
                       std::vector<std::string> choices) {
  return add({std::move(name),
              ValueType::string,
              std::move(def),
              std::move(help),
              {},
              {},
              std::move(choices)});
}

Schema& Schema::string_list(std::string name, std::vector<std::string> def, std::string help) {
  return add(
      {std::move(name), ValueType::string_list, std::move(def), std::move(help), {}, {}, {}});
}

Schema& Schema::number_list(std::string name, std::vector<double> def, std::string help) {
  return add(
      {std::move(name), ValueType::number_list, std::move(def), std::move(help), {}, {}, {}});
}

Schema& Schema::table_list(std::string name, std::string help) {
  return add({std::move(name), ValueType::table_list, TableList{}, std::move(help), {}, {}, {}});
}

const OptionSpec* Schema::find(const std::string& name) const {
  auto it = std::find_if(specs_.begin(), specs_.end(),
                         [&](const OptionSpec& s) { return s.name == name; });
  return it == specs_.end() ? nullptr : &*it;
}

namespace {

std::string where_prefix(const SourceLoc& loc) {
  auto s = loc.str();
  return s.empty() ? "" : s + ": ";
}

// An integer is accepted where a number is expected; nothing else converts.
Value convert(const OptionSpec& spec, const RawValue& raw, const std::string& section) {
  const auto found = type_of(raw.value);
  if (found == spec.type) return raw.value;
  if (spec.type == ValueType::number && found == ValueType::integer)
    return static_cast<double>(std::get<std::int64_t>(raw.value));
  // `[]` reads as an empty list of strings.
  if (spec.type == ValueType::number_list && found == ValueType::string_list &&
      std::get<std::vector<std::string>>(raw.value).empty())
    return std::vector<double>{};
  throw Error(fmt::format("{}[{}] {}: expected {}, found {}", where_prefix(raw.where), section,
                          spec.name, to_string(spec.type), describe(raw.value)));
}

void check_range(const OptionSpec& spec, const Value& value, const RawValue& raw,
                 const std::string& section) {
  double v = 0;
  if (spec.type == ValueType::integer)
    v = static_cast<double>(std::get<std::int64_t>(value));
  else if (spec.type == ValueType::number)
    v = std::get<double>(value);
  else if (spec.type == ValueType::string && !spec.choices.empty()) {
    const auto& s = std::get<std::string>(value);
    if (std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end())
      throw Error(fmt::format("{}[{}] {}: \"{}\" is not one of: {}", where_prefix(raw.where),
                              section, spec.name, s, fmt::join(spec.choices, ", ")));
    return;
  } else {
    return;
  }
  const bool below = spec.min && v < *spec.min;
  const bool above = spec.max && v > *spec.max;
  if (below || above || std::isnan(v)) {
    std::string range = spec.min && spec.max
                            ? fmt::format("between {} and {}", *spec.min, *spec.max)
                        : spec.min ? fmt::format("at least {}", *spec.min)
                                   : fmt::format("at most {}", spec.max.value_or(0));
    throw Error(fmt::format("{}[{}] {}: {} is out of range, expected {}", where_prefix(raw.where),
                            section, spec.name, describe(raw.value), range));
  }
}

}  // namespace

Options resolve(const Schema& schema, const RawSection& raw,
                const std::vector<std::string>& ignore) {
  Options out;
  for (const auto& spec : schema.specs()) out.set(spec.name, spec.default_value);
  for (const auto& [key, rv] : raw.values) {
    if (std::find(ignore.begin(), ignore.end(), key) != ignore.end()) continue;
    const OptionSpec* spec = schema.find(key);
    if (spec == nullptr) {
      std::vector<std::string> known;
      for (const auto& s : schema.specs()) known.push_back(s.name);
      for (const auto& i : ignore) known.push_back(i);
      std::sort(known.begin(), known.end());
      throw Error(fmt::format("{}[{}] unknown key '{}' (known keys: {})", where_prefix(rv.where),
                              raw.name, key,
                              known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
    }
    Value value = convert(*spec, rv, raw.name);
    check_range(*spec, value, rv, raw.name);
    out.set(key, std::move(value));
  }
  return out;
}

template <class T>
T Options::get(const std::string& name) const {
  auto it = values_.find(name);
  QLAB_CHECK(it != values_.end(), "option not declared: " + name);
  const T* v = std::get_if<T>(&it->second);
  QLAB_CHECK(v != nullptr, "option read with the wrong type: " + name);
  return *v;
}

template bool Options::get<bool>(const std::string&) const;
template std::int64_t Options::get<std::int64_t>(const std::string&) const;
template double Options::get<double>(const std::string&) const;
template std::string Options::get<std::string>(const std::string&) const;
template std::vector<std::string> Options::get<std::vector<std::string>>(const std::string&) const;
template TableList Options::get<TableList>(const std::string&) const;
template std::vector<double> Options::get<std::vector<double>>(const std::string&) const;

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values_) j[k] = qlab::to_json(v);
  return j;
}

}  // namespace qlab
