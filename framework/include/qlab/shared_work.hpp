#pragma once
// What the points of one sweep share. Points that differ only in their
// quantizer load the same data, start from the same float baseline and
// measure the same fp32 model; a sweep does each of these once, and once
// per calibration that does not depend on the point's bit widths.
#include <cstddef>
#include <memory>

namespace qlab {

class SharedWork {
 public:
  /// How many times each shared step ran, rather than being reused.
  struct Counts {
    int datasets_loaded = 0;
    int baselines_made = 0;  ///< trained, or loaded from the baseline cache
    int fp32_measured = 0;
    std::size_t calibrations = 0;
  };

  SharedWork();
  ~SharedWork();
  SharedWork(const SharedWork&) = delete;
  SharedWork& operator=(const SharedWork&) = delete;

  Counts counts() const;

  struct State;  ///< what is shared; defined where it is used (run_experiment)
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

}  // namespace qlab
