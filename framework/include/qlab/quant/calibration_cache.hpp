#pragma once
// Calibration statistics shared by the points of a sweep. What observers
// see on a float model does not depend on the bits they are later asked
// for, so points that differ only in bit widths calibrate once.
#include <qlab/quant/quant.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qlab {

/// Observers after calibration, one per node of the fused graph (null where
/// the node's output is not observed). Read-only once calibrated.
using CalibratedObservers = std::vector<std::shared_ptr<const Observer>>;

class CalibrationCache {
 public:
  /// The observers calibrated under `key`; `calibrate` runs the first time.
  std::shared_ptr<const CalibratedObservers> get(
      const std::string& key, const std::function<CalibratedObservers()>& calibrate);
  /// How many times a calibration ran (keys not found).
  std::size_t calibrations() const { return calibrations_; }

 private:
  std::map<std::string, std::shared_ptr<const CalibratedObservers>> entries_;
  std::size_t calibrations_ = 0;
};

}  // namespace qlab
