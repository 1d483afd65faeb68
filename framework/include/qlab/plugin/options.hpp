#pragma once
// Typed options: every plugin and every experiment section declares a Schema;
// TOML files and Lua tables both produce RawSections, and `resolve` checks one
// against the other, so both front ends validate identically.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace qlab {

/// A list of tables, such as a quantizer's NNI-style `config` list
/// (`[[quantizer.config]]` in TOML, a list of tables in Lua). Kept as JSON:
/// the plugin that declares it checks each entry's fields.
struct TableList {
  nlohmann::json entries = nlohmann::json::array();
  bool operator==(const TableList& other) const { return entries == other.entries; }
};

using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>,
                           TableList, std::vector<double>>;

/// In the order of Value's alternatives.
enum class ValueType { boolean, integer, number, string, string_list, table_list, number_list };

const char* to_string(ValueType type);
ValueType type_of(const Value& value);
std::string describe(const Value& value);    ///< e.g. `string "fast"`
nlohmann::json to_json(const Value& value);  ///< a list of tables as its entries

/// Where a value came from, for error messages: file:line:column.
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;
};

struct OptionSpec {
  std::string name;
  ValueType type;
  Value default_value;
  std::string help;
  std::optional<double> min;  ///< for integer and number
  std::optional<double> max;
  std::vector<std::string> choices;  ///< for string; empty means any
};

class Schema {
 public:
  Schema& add(OptionSpec spec);
  Schema& integer(std::string name, std::int64_t def, std::string help,
                  std::optional<double> min = {}, std::optional<double> max = {});
  Schema& number(std::string name, double def, std::string help, std::optional<double> min = {},
                 std::optional<double> max = {});
  Schema& boolean(std::string name, bool def, std::string help);
  Schema& string(std::string name, std::string def, std::string help,
                 std::vector<std::string> choices = {});
  Schema& string_list(std::string name, std::vector<std::string> def, std::string help);
  /// A list of numbers (integers accepted), e.g. one value per channel.
  Schema& number_list(std::string name, std::vector<double> def, std::string help);
  /// A list of tables, empty by default.
  Schema& table_list(std::string name, std::string help);

  const OptionSpec* find(const std::string& name) const;
  const std::vector<OptionSpec>& specs() const { return specs_; }

 private:
  std::vector<OptionSpec> specs_;
};

struct RawValue {
  Value value;
  SourceLoc where;
};

/// One section of user input (e.g. `[train]`), before validation.
struct RawSection {
  std::string name;  ///< section name, used in messages: "[train] lr"
  SourceLoc where;   ///< the section header, for missing-key errors
  std::map<std::string, RawValue> values;
};

/// Validated options: every key of the schema is present (default or given).
class Options {
 public:
  Options() = default;
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  template <class T>
  T get(const std::string& name) const;
  void set(const std::string& name, Value value) { values_[name] = std::move(value); }
  const std::map<std::string, Value>& values() const { return values_; }
  nlohmann::json to_json() const;

 private:
  std::map<std::string, Value> values_;
};

/// Checks `raw` against `schema`; keys listed in `ignore` (e.g. "name") are
/// skipped. Throws qlab::Error naming file:line, the section and the key for
/// unknown keys, wrong types and out-of-range values.
Options resolve(const Schema& schema, const RawSection& raw,
                const std::vector<std::string>& ignore = {});

extern template bool Options::get<bool>(const std::string&) const;
extern template std::int64_t Options::get<std::int64_t>(const std::string&) const;
extern template double Options::get<double>(const std::string&) const;
extern template std::string Options::get<std::string>(const std::string&) const;
extern template std::vector<std::string> Options::get<std::vector<std::string>>(
    const std::string&) const;
extern template TableList Options::get<TableList>(const std::string&) const;
extern template std::vector<double> Options::get<std::vector<double>>(const std::string&) const;

}  // namespace qlab
