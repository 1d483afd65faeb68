// The quantized-dtype calls live inside qlab's backend plugins, so LibTorch
// 2.13's deprecation warning would reach every user of an int8 backend, who
// can do nothing about it. LibTorch's warning handler is per thread; it is
// set here when the library loads, before any plugin's first kernel call.
// Its API changed in LibTorch 2.0: before, process() took a location and a
// message; since, one c10::Warning.
#include <qlab/torch_warnings.hpp>

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <string>

namespace qlab {
namespace {

std::atomic<std::int64_t> quieted{0};

// Whether the filter keeps `msg` out (and counts it).
bool keeps_out(std::string msg) {
  std::transform(msg.begin(), msg.end(), msg.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto has = [&](const char* s) { return msg.find(s) != std::string::npos; };
  if (!has("deprecat") || !(has("quint8") || has("qint8") || has("quantized"))) return false;
  ++quieted;
  return true;
}

#if TORCH_VERSION_MAJOR >= 2
class QuietQuantizedDeprecations final : public c10::WarningHandler {
 public:
  QuietQuantizedDeprecations() : next_(c10::WarningUtils::get_warning_handler()) {
    c10::WarningUtils::set_warning_handler(this);
  }
  void process(const c10::Warning& warning) override {
    if (!keeps_out(warning.msg())) next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};
#else
class QuietQuantizedDeprecations final : public c10::WarningHandler {
 public:
  QuietQuantizedDeprecations() : next_(c10::Warning::get_warning_handler()) {
    c10::Warning::set_warning_handler(this);
  }
  void process(const c10::SourceLocation& where, const std::string& msg,
               const bool verbatim) override {
    if (!keeps_out(msg)) next_->process(where, msg, verbatim);
  }

 private:
  c10::WarningHandler* next_;
};
#endif

// Never destroyed: LibTorch may warn from other libraries' destructors.
[[maybe_unused]] const auto* const kQuiet = new QuietQuantizedDeprecations();

}  // namespace

std::int64_t quieted_torch_warnings() { return quieted.load(); }

}  // namespace qlab
