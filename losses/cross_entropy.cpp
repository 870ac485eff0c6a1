// losses/cross_entropy.cpp - mean softmax cross-entropy (losses/losses.h):
// argument checks, dispatch to kernels/norm_loss.h, the backward record.
#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/op_table.h"
#include "kernels/norm_loss.h"
#include "losses/losses.h"

namespace simclr {

// ------------------------------------------------------------------ cross-entropy
namespace {
// Calls f(L{}) with L = int32_t or int64_t, the labels' type.
template <class F>
void dispatch_labels(DType t, F&& f) {
  switch (t) {
    case DType::i32: f(int32_t{}); return;
    case DType::i64: f(int64_t{}); return;
    default: fail("cross_entropy: labels must be i32 or i64, got ", dtype_name(t));
  }
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  check_supported(Op::cross_entropy, logits.device(), logits.dtype());
  check_ndim("cross_entropy (logits, [N,K])", logits, 2);
  check_ndim("cross_entropy (labels, [N])", labels, 1);
  check_same_device("cross_entropy", logits, labels);
  const int64_t N = logits.size(0), K = logits.size(1);
  SIMCLR_CHECK(N >= 1 && K >= 1, "cross_entropy: empty logits ", logits.describe());
  SIMCLR_CHECK(labels.size(0) == N, "cross_entropy: ", N, " rows of logits ", logits.describe(), " but ",
               labels.size(0), " labels ", labels.describe());
  dispatch_labels(labels.dtype(), [&](auto ltag) {
    using L = decltype(ltag);
    const L* lab = labels.data<L>();
    for (int64_t n = 0; n < N; n++)
      SIMCLR_CHECK(lab[n] >= 0 && lab[n] < K, "cross_entropy: label ", static_cast<int64_t>(lab[n]), " of row ", n,
                   " is outside [0, ", K, ") for logits ", logits.describe());
  });
  Tensor loss = Tensor::empty({1}, logits.dtype(), logits.device());
  Tensor lse = Tensor::empty({N}, logits.dtype(), logits.device());
  dispatch_cpu_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_labels(labels.dtype(), [&](auto ltag) {
      using L = decltype(ltag);
      cpu::cross_entropy_forward(loss.data<T>(), lse.data<T>(), logits.data<T>(), labels.data<L>(), N, K);
    });
  });
  if (needs_grad({logits})) {
    loss.set_requires_grad();
    record("cross_entropy", [logits, labels, loss, lse, N, K]() {
      Tensor gy = loss.grad(), gx = grad_for(logits);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(logits.dtype(), [&](auto tag) {
        using T = decltype(tag);
        dispatch_labels(labels.dtype(), [&](auto ltag) {
          using L = decltype(ltag);
          cpu::cross_entropy_backward(gx.data<T>(), gy.data<T>(), logits.data<T>(), lse.data<T>(), labels.data<L>(),
                                      N, K);
        });
      });
    });
  }
  return loss;
}

}  // namespace simclr
