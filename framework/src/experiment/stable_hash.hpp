#pragma once
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace qlab {

/// FNV-1a, 64 bits, as hex: stable across runs and machines (cache file
/// names, checkpoint signatures); not for security.
inline std::string stable_hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace qlab
