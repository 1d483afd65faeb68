#pragma once
// NNI-style config lists: which conv2d/linear layers a quantizer quantizes,
// which of their tensors (weight, input, output), and to how many bits.
//
//   [[quantizer.config]]
//   op_types = ["conv2d", "linear"]
//   quant_types = ["weight", "input", "output"]
//   quant_bits = { weight = 4, input = 8, output = 8 }   # or one integer
//
//   [[quantizer.config]]
//   op_names = ["fc3"]
//   exclude = true
//
// Entries apply in order; a later entry that matches a layer replaces what
// earlier ones said of it. A layer no entry matches stays float, and is
// listed as such.
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/options.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace qlab {

/// Bits of one layer's tensors; 0 leaves that tensor float.
struct LayerBits {
  int weight = 0;
  int input = 0;
  int output = 0;
  bool operator==(const LayerBits& o) const {
    return weight == o.weight && input == o.input && output == o.output;
  }
};

struct ConfigEntry {
  std::set<Op> op_types;              ///< empty: any conv2d/linear
  std::vector<std::string> op_names;  ///< empty: any name
  bool exclude = false;
  LayerBits bits;
};

/// What a quantizer may accept: the op types it has kernels or fake-quant
/// for, the tensor types it can quantize, and its bit range.
struct ConfigRules {
  std::set<Op> op_types{Op::conv2d, Op::linear};
  std::set<std::string> quant_types{"weight", "input", "output"};
  int min_bits = 1, max_bits = 16;
  /// Why an op type outside op_types cannot be selected, for errors and
  /// for the list of float layers.
  std::string op_types_reason = "this quantizer does not quantize it";
};

/// What a quantizer can quantize, declared once per quantizer: the host
/// makes the bit options of its schema (weight_bits, activation_bits,
/// config) and checks its config list from this, before any training.
struct QuantizerCaps {
  ConfigRules rules;
  int weight_bits = 8;      ///< weight_bits' default
  int activation_bits = 8;  ///< activation_bits' default
  /// activation_bits may be 0, leaving activations float.
  bool float_activations = false;
  std::string weight_help = "bits of weights (1: binary)";
  std::string activation_help = "bits of layer inputs and outputs";
};

/// Adds weight_bits, activation_bits and config to `schema`, as `caps` says.
Schema& add_bit_options(Schema& schema, const QuantizerCaps& caps);

/// Parses a config list (a JSON array of tables); every error names `where`
/// (the key, e.g. "[quantizer] config") and the entry's 1-based index.
std::vector<ConfigEntry> parse_config_list(const nlohmann::json& list, const std::string& where,
                                           const ConfigRules& rules);

/// The one-entry list the flat options (weight_bits, activation_bits) mean.
std::vector<ConfigEntry> default_config_list(const ConfigRules& rules, LayerBits bits);

/// A quantizer's `config` option, or, when it is empty, the default list
/// its `weight_bits` and `activation_bits` options mean (activation bits
/// quantize each layer's input and output; 0 leaves activations float).
std::vector<ConfigEntry> config_list_option(const Options& options, const ConfigRules& rules);

struct LayerSelection {
  std::map<std::string, LayerBits> layers;          ///< selected conv2d/linear -> bits
  std::map<std::string, std::string> float_layers;  ///< conv2d/linear left float -> why
};

/// Applies `entries` to every conv2d/linear node of `graph`; layers of an op
/// type outside `rules` stay float for rules.op_types_reason. An op_names
/// entry naming no selectable layer is an error (a typo would otherwise
/// leave a layer float without a word).
LayerSelection select_layers(const Graph& graph, const std::vector<ConfigEntry>& entries,
                             const std::string& where, const ConfigRules& rules);

}  // namespace qlab
