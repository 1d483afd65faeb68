#pragma once
// The three error channels of qlab (STYLE.md practice 7):
//  - Error: a user error (bad file, key, value, plugin); the message names the
//    file, line or key and what was found against what was expected.
//  - QLAB_CHECK: a broken invariant inside qlab; reports condition and file:line.
//  - a failed sweep point is stored with its message (see the results store).
#include <stdexcept>
#include <string>

namespace qlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A problem with a plugin file: loading, versions, or a call into it.
class PluginError : public Error {
 public:
  using Error::Error;
};

/// The user stopped qlab with Ctrl-C (SIGINT) and what could be saved was:
/// not a failure of the point that was running, which is not stored.
class Interrupted : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void fail_check(const char* condition, const char* file, int line,
                             const std::string& detail);

}  // namespace qlab

#define QLAB_CHECK(cond, detail)                                          \
  do {                                                                    \
    if (!(cond)) ::qlab::fail_check(#cond, __FILE__, __LINE__, (detail)); \
  } while (false)
