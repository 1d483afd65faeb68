#include "experiment/shared_work.hpp"

namespace qlab {

SharedWork::SharedWork() : state_(std::make_unique<State>()) {}
SharedWork::~SharedWork() = default;

SharedWork::Counts SharedWork::counts() const {
  Counts c = state_->counts;
  c.calibrations = state_->calibration.calibrations();
  return c;
}

}  // namespace qlab
