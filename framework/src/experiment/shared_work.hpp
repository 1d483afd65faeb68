#pragma once
// The state behind SharedWork, keyed by everything each step depends on.
#include <qlab/plugin/data.hpp>
#include <qlab/quant/calibration_cache.hpp>
#include <qlab/shared_work.hpp>

#include "experiment/measure.hpp"

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace qlab {

struct SharedBaseline {
  GraphModule module{nullptr};  ///< a copy no point runs or changes
  nlohmann::json training;
  double train_seconds = 0;
  std::vector<std::string> notes;
};

struct SharedFp32 {
  Measured measured;
  nlohmann::json samples;
  torch::Tensor rng_state;  ///< the default generator's, after measuring
};

struct SharedWork::State {
  // A dataset can take gigabytes: only the most recent few stay.
  static constexpr std::size_t kDatasetsKept = 2;
  std::deque<std::pair<std::string, DataSplits>> datasets;
  std::map<std::string, SharedBaseline> baselines;
  std::map<std::string, SharedFp32> fp32;
  CalibrationCache calibration;
  Counts counts;
};

}  // namespace qlab
