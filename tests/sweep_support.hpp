#pragma once
// A stand-in for run_experiment in sweep tests: instant, deterministic rows
// derived from the point's options, and a count of the calls.
#include "test_support.hpp"

#include <qlab/script.hpp>
#include <qlab/sweep.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <sstream>

namespace qlab::test {

/// Runs Lua `code` as chunk "t.lua"; returns the qlab::Error message, or ""
/// when it succeeds.
inline std::string script_error(Script& s, const std::string& code) {
  try {
    s.run_string(code, "t.lua");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline Experiment lenet_experiment() {
  return parse_experiment(
      "[model]\nname = \"lenet\"\n[quantizer]\nname = \"static\"\n[backend]\nname = \"cpu\"\n",
      "base.toml");
}

inline std::int64_t option_or(const Experiment& ex, const std::string& key, std::int64_t fallback) {
  auto it = ex.quantizer.values.find(key);
  return it == ex.quantizer.values.end() ? fallback : std::get<std::int64_t>(it->second.value);
}

/// Rows as run_experiment shapes them: an fp32 row, then a quantized one
/// whose accuracy is 10 x weight_bits. weight_bits = 3 throws, like a point
/// whose training diverged.
struct FakeRunner {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  PointRunner runner() const {
    auto counter = calls;
    return [counter](const Experiment& ex, const ExperimentPlan&) {
      ++*counter;
      const auto bits = option_or(ex, "weight_bits", 8);
      if (bits == 3) throw Error("[train] loss became NaN at epoch 1");
      ResultRow fp;
      fp.model = "lenet";
      fp.dataset = "fashion-mnist";
      fp.backend = "cpu";
      fp.metrics = {{"accuracy", 88.0}, {"size_bytes", 1000.0}};
      fp.config = {{"quantizer", {{"name", "none"}}}, {"model", {{"name", "lenet"}}}};
      if (!ex.quantizer.values.count("name")) return std::vector<nlohmann::json>{to_json(fp)};
      ResultRow q = fp;
      q.quantizer = "static";
      q.mode = bits == 8 ? Mode::int8 : Mode::simulated;
      q.metrics = {{"accuracy", 10.0 * static_cast<double>(bits)},
                   {"size_bytes", 125.0 * static_cast<double>(bits)}};
      q.config["quantizer"] = {{"name", "static"}, {"weight_bits", bits}};
      return std::vector<nlohmann::json>{to_json(fp), to_json(q)};
    };
  }
};

/// A store in a fresh folder and a sweeper over the fake runner.
class SweeperTest : public ::testing::Test {
 protected:
  TempDir dir;
  ResultStore store{dir.file("r.sqlite")};
  FakeRunner fake;
  std::ostringstream log;
  Sweeper sweeper{build_registry(), store, fake.runner(), log};
};

}  // namespace qlab::test
