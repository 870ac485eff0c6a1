// ops/ops.h - the differentiable tensor ops of the engine.
//
// Each op checks its arguments (device, dtype, shape; a clear simclr::Error
// otherwise), asks the one dispatch point for the kernel set of (op, device,
// dtype) (kernels/registry.h: the backends' tables kernels/cpu/table.cpp and
// kernels/cuda/table.cu; an unsupported combination fails naming all three),
// calls its raw-pointer kernels with the operands' ptr<T>() and, when an
// input requires grad, records its backward with the same kernel set on the
// tape (engine/autograd.h, ops/record.h). Op bodies never touch elements, so
// a backend gains an op by its table row alone. The CPU backend has every op
// in f32 and f64 (f64 for gradient checks); the CUDA backend, NT-Xent so far.
//
// Shape legend: N batch, H/W spatial, C channels (last: NHWC), O output
// channels, V views (rows of an embedding matrix), D feature dimension,
// K classes.
#pragma once
#include "engine/tensor.h"

namespace simclr {

class Communicator;  // engine/comm.h

// ---- elementwise
Tensor relu(const Tensor& x);                   // any shape
Tensor add(const Tensor& a, const Tensor& b);   // same shape (residual)
// max(a + b, 0): a residual block's sum and ReLU in one sweep, no intermediate
// tensor (same values and gradients as relu(add(a, b))).
Tensor add_relu(const Tensor& a, const Tensor& b);
// Σ_i a_i r_i as a 1-element tensor; r is a constant (no grad). Used by the
// gradient checker to turn any output into a scalar with a random cotangent.
Tensor sum_product(const Tensor& a, const Tensor& r);
Tensor mean(const Tensor& x);                   // mean of all elements, 1-element tensor
Tensor scale(const Tensor& x, double s);        // x * s

// ---- element type: y = x converted to dtype (x itself when it has that
// dtype). Backward: dx += dy converted back into x's dtype (the gradient of
// a bf16 copy of an f32 weight accumulates into the f32 gradient). CPU: every
// pair of f32, f64, bf16; CUDA: f32 <-> bf16 (kernels/cast.h).
Tensor cast(const Tensor& x, DType dtype);

// ---- dense
// y[N,O] = x[N,I] w[O,I]^T + b[O]; b may be undefined (no bias).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- convolution (NHWC activations, OHWI weights, no bias)
// x[N,H,W,C], w[O,kH,kW,C] -> y[N,Ho,Wo,O], Ho = (H + 2p - kH)/s + 1.
Tensor conv2d(const Tensor& x, const Tensor& w, int stride, int padding);

// ---- pooling
// 3x3 window, stride 2, padding 1 (the ImageNet stem), NHWC. Padding never
// wins the max. Ties go to the first element in window order.
Tensor max_pool2d(const Tensor& x, int kernel = 3, int stride = 2, int padding = 1);
// x[N,H,W,C] -> y[N,C], mean over H and W.
Tensor global_avg_pool(const Tensor& x);

// ---- batch normalisation over every dim but the last (channels last):
// 2-D BN for x[N,H,W,C], 1-D BN for x[N,C].
// training: normalise with the batch mean and biased variance; update
//   running_mean = (1-m) running_mean + m mean, running_var = (1-m) running_var
//   + m var_unbiased (PyTorch's convention, m = momentum).
// eval: normalise with the running statistics.
// gamma/beta may be undefined (affine off). running_* may be undefined in
// training (no update). With comm (size > 1) the batch statistics are those
// of all ranks' rows (global / cross-device BN): forward all-gathers the
// per-channel (mean, M2, count) and merges them (Chan's formula; unequal
// counts allowed), backward all-reduces (Σdy, Σdy·x̂); dγ, dβ stay per-rank
// (the gradient all-reduce sums them); comm must outlive backward.
// gamma/beta have x's dtype; running_* are buffers, f32 or f64 whatever x's
// dtype (updated in double, stored in their own dtype).
// relu: the fused BN+ReLU, y = max(BN(x), 0), one sweep instead of two and
// no intermediate tensor (same values and gradients as relu(batch_norm(x))).
struct BatchNormOptions {
  bool training = true;
  bool relu = false;
  double momentum = 0.1;
  double eps = 1e-5;
  Communicator* comm = nullptr;
};
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& opt);

// ---- normalisation (the losses: losses/losses.h)
// Row-wise L2 normalisation of x[V,D]: y_i = x_i / max(|x_i|, eps).
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);

}  // namespace simclr
