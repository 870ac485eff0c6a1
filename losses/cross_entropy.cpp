// losses/cross_entropy.cpp - mean softmax cross-entropy (losses/losses.h):
// argument checks, dispatch<CrossEntropyKernels> (kernels/norm_loss.h, through
// kernels/registry.h) and the backward record, the pattern of
// ops/elementwise.cpp. The labels' type picks the set's i32 or i64 functions;
// their range check is a kernel returning the first bad row.
#include "kernels/norm_loss.h"
#include "kernels/registry.h"
#include "losses/losses.h"
#include "ops/record.h"

namespace simclr {

namespace {
// Calls f(kl, L{}) with kl = k.i32 or k.i64, the functions for labels of dtype t.
template <class K, class F>
void with_labels(const K& k, DType t, F&& f) {
  switch (t) {
    case DType::i32: f(k.i32, int32_t{}); return;
    case DType::i64: f(k.i64, int64_t{}); return;
    default: fail("cross_entropy: labels must be i32 or i64, got ", dtype_name(t));
  }
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  check_ndim("cross_entropy (logits, [N,K])", logits, 2);
  check_ndim("cross_entropy (labels, [N])", labels, 1);
  check_same_device("cross_entropy", logits, labels);
  const int64_t N = logits.size(0), K = logits.size(1);
  SIMCLR_CHECK(N >= 1 && K >= 1, "cross_entropy: empty logits ", logits.describe());
  SIMCLR_CHECK(labels.size(0) == N, "cross_entropy: ", N, " rows of logits ", logits.describe(), " but ",
               labels.size(0), " labels ", labels.describe());
  Tensor loss;
  dispatch<CrossEntropyKernels>(logits.device(), logits.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    with_labels(k, labels.dtype(), [&](const auto& kl, auto ltag) {
      using L = decltype(ltag);
      const BadLabel bad = kl.check_labels(labels.ptr<L>(), N, K);
      SIMCLR_CHECK(bad.row < 0, "cross_entropy: label ", bad.label, " of row ", bad.row, " is outside [0, ", K,
                   ") for logits ", logits.describe());
      loss = Tensor::empty({1}, logits.dtype(), logits.device());
      Tensor lse = Tensor::empty({N}, logits.dtype(), logits.device());
      kl.forward(loss.ptr<T>(), lse.ptr<T>(), logits.ptr<T>(), labels.ptr<L>(), N, K);
      record_backward("cross_entropy", loss, {logits}, [kl, logits, labels, lse, N, K](const Tensor& gy) {
        Tensor gx = grad_for(logits);
        if (gx.defined())
          kl.backward(gx.ptr<T>(), gy.ptr<T>(), logits.ptr<T>(), lse.ptr<T>(), labels.ptr<L>(), N, K);
      });
    });
  });
  return loss;
}

}  // namespace simclr
