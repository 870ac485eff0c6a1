// train/step.cpp - see step.h.
#include "train/step.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/profile.h"
#include "losses/losses.h"

namespace simclr {

StepResult train_step(const Tensor& views, SimclrModel& model, Optimizer& optimizer, double lr, double temperature,
                      Communicator* comm, const LossFilter& loss_filter) {
  SIMCLR_CHECK(model.head != nullptr, "train_step: the model was built without its projection head");
  model.store.zero_grad();
  // bf16: the views cast to bf16 (the whole forward follows its input's dtype) and z
  // back to f32, so the loss and its gradient are the fp32 NT-Xent (V x out values: a
  // negligible cast); f32: both casts are the identity (no op, no tape entry).
  // Multi-process (comm of more than one rank): global BN unless model.bn = local, and
  // NT-Xent with the negatives of every rank, whose loss is the global one (the same on
  // every rank) and whose gradient is this rank's share: the all-reduce below sums them.
  Communicator* bn_comm = model.encoder->config().global_bn ? comm : nullptr;
  Tensor h = model.encoder->forward(cast(views, model.compute_dtype), true, bn_comm);
  Tensor z = cast(model.head->forward(h, true, bn_comm), DType::f32);
  Tensor loss;
  {
    OpTimer t("ntxent");
    loss = ntxent(z, temperature, comm);
  }
  StepResult r;
  r.loss = loss.item();
  if (loss_filter) r.loss = loss_filter(r.loss);
  if (!std::isfinite(r.loss)) {
    clear_tape();
    return r;
  }
  {
    OpTimer t("backward (total)");
    backward(loss);
  }
  if (comm != nullptr && comm->size() > 1) {
    OpTimer t("all_reduce");
    comm->all_reduce_sum(model.store.grads());
  }
  {
    OpTimer t("optimizer");
    optimizer.step(lr);
  }
  r.updated = true;
  return r;
}

}  // namespace simclr
