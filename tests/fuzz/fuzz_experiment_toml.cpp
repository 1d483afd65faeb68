// The TOML experiment loader: parse_experiment on any text, then the TOML
// writer and parser again on what was accepted (a round trip must hold).
#include "fuzz_support.hpp"

#include <qlab/experiment.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return qlab::fuzz::refuse_or_accept([&] {
    const qlab::Experiment ex = qlab::parse_experiment(text, "fuzz.toml");
    const std::string written = qlab::to_toml(ex);
    if (qlab::to_toml(qlab::parse_experiment(written, "written.toml")) != written) std::abort();
  });
}
