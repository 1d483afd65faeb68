#include <qlab/quant/calibration_cache.hpp>

namespace qlab {

std::shared_ptr<const CalibratedObservers> CalibrationCache::get(
    const std::string& key, const std::function<CalibratedObservers()>& calibrate) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  auto observed = std::make_shared<const CalibratedObservers>(calibrate());
  ++calibrations_;
  return entries_.emplace(key, std::move(observed)).first->second;
}

}  // namespace qlab
