// optim/schedule.h - the SimCLR learning-rate schedule.
//
// Base rate scaling (the paper's two rules; batch = images per step, N):
//   "linear": peak = lr * batch / 256        "sqrt": peak = lr * sqrt(batch)
//   "none"  : peak = lr
// Schedule over total_steps updates, warmup_steps of them warm-up (the
// official SimCLR code: learning_rate.py WarmUpAndCosineDecay), where step is
// the number of updates already done (0 for the first update):
//   step < warmup:  lr(step) = peak * step / warmup
//   else:           lr(step) = peak * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))
// so lr(warmup) = peak, the cosine reaches 0 at step = total. With warmup = 0
// the first update uses the peak rate. warmup_steps = round(warmup_epochs *
// steps_per_epoch) (fractional epochs allowed).
#pragma once
#include <cstdint>
#include <string>

namespace simclr {

double scaled_base_lr(double lr, const std::string& scaling, int64_t batch);

struct Schedule {
  double peak_lr = 0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  Schedule() = default;
  Schedule(double peak, int64_t warmup, int64_t total);
  // Learning rate for the update that follows `step` completed updates.
  double lr(int64_t step) const;
};

// warmup_steps from fractional epochs: round(epochs * steps_per_epoch), capped at total.
int64_t warmup_steps_from_epochs(double warmup_epochs, int64_t steps_per_epoch, int64_t total_steps);

}  // namespace simclr
