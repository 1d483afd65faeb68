#pragma once
// What every fuzz target shares: the input as a file (qlab's readers take
// paths), and the rule that a qlab::Error is the right answer to bad bytes
// while anything else (a crash, a sanitizer report, another exception
// escaping) is a finding.
#include <qlab/error.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace qlab::fuzz {

/// A file of this process's own, in memory where the system has a tmpfs.
inline const std::string& scratch(const std::string& name) {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path shm = "/dev/shm";
    auto d = (std::filesystem::exists(shm) ? shm : std::filesystem::temp_directory_path()) /
             ("qlab-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  static std::string path;
  path = (dir / name).string();
  return path;
}

inline void write(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

/// Runs `fn`; a qlab::Error is the expected way to refuse an input.
template <class F>
int refuse_or_accept(F&& fn) {
  try {
    fn();
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace qlab::fuzz
