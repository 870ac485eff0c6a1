// optim/schedule.cpp - see schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"

namespace simclr {

double scaled_base_lr(double lr, const std::string& scaling, int64_t batch) {
  SIMCLR_CHECK(batch >= 1, "learning-rate scaling: batch ", batch, " must be positive");
  if (scaling == "linear") return lr * static_cast<double>(batch) / 256.0;
  if (scaling == "sqrt") return lr * std::sqrt(static_cast<double>(batch));
  if (scaling == "none") return lr;
  fail("learning-rate scaling \"", scaling, "\" is not one of: linear, sqrt, none");
}

Schedule::Schedule(double peak, int64_t warmup, int64_t total) : peak_lr(peak), warmup_steps(warmup), total_steps(total) {
  SIMCLR_CHECK(total >= 1, "schedule: total steps ", total, " must be positive");
  SIMCLR_CHECK(warmup >= 0 && warmup <= total, "schedule: warm-up steps ", warmup, " must be in [0, ", total, "]");
}

double Schedule::lr(int64_t step) const {
  if (step < warmup_steps) return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (total_steps == warmup_steps) return peak_lr;
  const double t = static_cast<double>(std::min(step, total_steps) - warmup_steps) /
                   static_cast<double>(total_steps - warmup_steps);
  return peak_lr * 0.5 * (1.0 + std::cos(M_PI * t));
}

int64_t warmup_steps_from_epochs(double warmup_epochs, int64_t steps_per_epoch, int64_t total_steps) {
  int64_t w = std::llround(warmup_epochs * static_cast<double>(steps_per_epoch));
  return std::clamp<int64_t>(w, 0, total_steps);
}

}  // namespace simclr
