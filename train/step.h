// train/step.h - one SimCLR training step, the only place it is written out.
//
//   zero the gradients -> encoder f (BN in training mode) -> projection head g
//   -> NT-Xent(z, temperature) -> [non-finite loss: stop here] -> backward
//   -> gradient all-reduce (multi-process only) -> optimiser step at lr.
//
// Used by train() (train/trainer.h), measure_step_seconds() (the quickstart
// calibration), benchmarks/bench_train_step and the tests, so that all of
// them time and check the same operations in the same order.
//
// On a device (cuda, emu) with an optimiser that has a device guard (LARS,
// optim/optimizer.h) the step never waits for the host: the loss stays on the
// device, the guard kernel records it and, when it is not finite, turns this
// and every later update into a no-op (sticky), and backward runs either way.
// The caller learns the loss later from optimizer.guard_state() (train/
// trainer.cpp reads it asynchronously, a few steps late). The effect on the
// parameters and the optimiser state is the CPU path's: a non-finite loss
// leaves both as they were before that step.
#pragma once
#include <functional>

#include "engine/async.h"
#include "engine/comm.h"
#include "engine/tensor.h"
#include "optim/optimizer.h"
#include "train/model.h"

namespace simclr {

struct StepResult {
  double loss = 0;       // the step's loss (as loss_filter returned it, when one is given)
  bool updated = false;  // false: the loss was not finite, so the step stopped before backward and
                         // the update (parameters and optimiser state unchanged, the tape cleared)
  bool pending = false;  // a device step: loss and updated are not known yet; they are in the
                         // optimiser's guard_state() once the device has run the step
};

// Test seam: replaces the loss value before the finite check (e.g. NaN). On a
// device it costs a host wait (the loss is read, filtered and written back).
using LossFilter = std::function<double(double loss)>;

// One step on `views` ([2N, S, S, C], [view 1; view 2]). comm: null or a
// size-1 communicator means a single process (no all-reduce); with more
// ranks BN is global (unless model.bn = local), NT-Xent takes the negatives of
// every rank and its loss is the global one, the same on every rank, while each
// rank's gradient is its share: the flat gradient (ParamStore::grads) is summed
// over ranks before the update. Profile
// phases (engine/profile.h): "ntxent", "backward (total)", "all_reduce",
// "optimizer"; the model's ops time themselves.
StepResult train_step(const Tensor& views, SimclrModel& model, Optimizer& optimizer, double lr, double temperature,
                      Communicator* comm = nullptr, const LossFilter& loss_filter = {});

// A pending result made known (a host wait: the optimiser's guard state is
// read); a result that is not pending is returned as it is.
StepResult wait_result(const StepResult& r, const Optimizer& optimizer);

// train.cuda_graph: the device step captured once as a graph and replayed
// (engine/async.h). The first `eager_steps` calls run train_step as usual
// (they build the convolution plans and settle the allocator); the next one
// captures the step on a persistent input buffer and replays it, and every
// later one copies its views into that buffer, stages the learning rate and
// replays. Results are pending (see above). Needs a device model and an
// optimiser with a device guard.
class CapturedStep {
 public:
  CapturedStep(SimclrModel& model, Optimizer& optimizer, double temperature, Communicator* comm = nullptr,
               int eager_steps = 2);
  StepResult run(const Tensor& views, double lr);
  bool captured() const { return !graph_.empty(); }
  size_t nodes() const { return graph_.nodes(); }

 private:
  SimclrModel* model_;
  Optimizer* optimizer_;
  double temperature_;
  Communicator* comm_;
  int eager_steps_, calls_ = 0;
  Tensor input_;
  DeviceGraph graph_;
};

}  // namespace simclr
