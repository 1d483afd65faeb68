#pragma once
// Quantizer plugins: how float layers become quantized layers.
//
// API version 1 fixes only how a quantizer is found and configured. The
// graph-transforming entry points (prepare, calibrate, convert) arrive with
// the quantization core and will bump kPluginApiVersion; until then the host
// accepts only `quantizer.name = "none"` and says so for any other name.
#include <qlab/options.hpp>
#include <qlab/plugin.hpp>

namespace qlab {

class Quantizer : public Plugin {
 public:
  /// Options the quantizer accepts in `[quantizer]` (besides `name`).
  virtual Schema options() const = 0;
};

}  // namespace qlab
