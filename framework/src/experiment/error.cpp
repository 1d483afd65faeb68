#include <qlab/error.hpp>

#include <fmt/format.h>

namespace qlab {

void fail_check(const char* condition, const char* file, int line, const std::string& detail) {
  throw std::logic_error(fmt::format("qlab internal error: check '{}' failed at {}:{}: {}",
                                     condition, file, line, detail));
}

}  // namespace qlab
