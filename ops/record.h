// ops/record.h - the backward record every op body ends with.
#pragma once
#include <initializer_list>
#include <utility>

#include "engine/autograd.h"

namespace simclr {

// When grad mode is on and any of `inputs` requires grad: marks the output y
// as requiring grad and appends `backward(gy)` to the tape, run with y's
// gradient gy when y has one by then (engine/autograd.h). The closure holds
// what it captures (inputs, saved tensors, the op's kernel set) until the
// tape runs or is cleared.
template <class F>
void record_backward(const char* op, Tensor& y, std::initializer_list<Tensor> inputs, F&& backward) {
  if (!needs_grad(inputs)) return;
  y.set_requires_grad();
  record(op, [y, f = std::forward<F>(backward)]() {
    const Tensor gy = y.grad();
    if (gy.defined()) f(gy);
  });
}

}  // namespace simclr
