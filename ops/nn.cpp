// ops/nn.cpp - convolution, pooling, batch norm and L2 normalisation:
// argument checks, dispatch<K> to the backend's kernel set
// (kernels/{conv2d,pool,batchnorm,norm_loss}.h through kernels/registry.h),
// the backward records (the pattern of ops/elementwise.cpp).
//
// Batch-norm running statistics are buffers, not differentiable inputs: they
// may be f32 or f64 whatever x's dtype is (parameters and buffers are f32,
// float64 gradient checks run without running statistics), both of one dtype.
// Their update is computed in double and stored in the buffers' dtype by the
// finalize kernel; in eval they are converted to x's dtype by another.
// gamma/beta must match x's dtype (their gradients do). With a communicator
// of more than one rank (global BN), each rank's per-channel (mean, M2, count)
// is all-gathered and merged by Chan's formula (kernels/batchnorm.h
// merge_stats: ranks may hold different counts), and backward all-reduces the
// per-channel [Σdy | Σdy·x̂] once; the result equals BN over the concatenated
// batch. The communicator must outlive the backward pass; its collectives run
// between kernels, on tensors, so the statistics never visit the host.
#include "engine/comm.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/norm_loss.h"
#include "kernels/pool.h"
#include "kernels/registry.h"
#include "ops/ops.h"
#include "ops/record.h"

namespace simclr {

// ------------------------------------------------------------------ conv2d
Tensor conv2d(const Tensor& x, const Tensor& w, int stride, int padding) {
  check_ndim("conv2d (input x, NHWC)", x, 4);
  check_ndim("conv2d (weight w, OHWI)", w, 4);
  check_same_device("conv2d", x, w);
  check_same_dtype("conv2d", x, w);
  SIMCLR_CHECK(stride >= 1, "conv2d: stride must be >= 1, got ", stride);
  SIMCLR_CHECK(padding >= 0, "conv2d: padding must be >= 0, got ", padding);
  const Conv2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(1), w.size(2), stride, padding};
  SIMCLR_CHECK(w.size(3) == s.C, "conv2d: input ", x.describe(), " has ", s.C, " channels but weight ",
               w.describe(), " expects ", w.size(3));
  SIMCLR_CHECK(s.O >= 1 && s.kH >= 1 && s.kW >= 1, "conv2d: empty weight ", w.describe());
  SIMCLR_CHECK(s.H + 2 * s.pad >= s.kH && s.W + 2 * s.pad >= s.kW, "conv2d: kernel ", s.kH, "x", s.kW,
               " does not fit input ", x.describe(), " with padding ", padding);
  Tensor y;
  dispatch<Conv2dKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({s.N, s.Ho(), s.Wo(), s.O}, x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), w.ptr<T>(), s);
    record_backward("conv2d", y, {x, w}, [k, x, w, s](const Tensor& gy) {
      bool accumulate = true;
      Tensor gx = grad_for_write(x, &accumulate), gw = grad_for(w);
      k.backward(ptr_or_null<T>(gx), accumulate, ptr_or_null<T>(gw), gy.ptr<T>(), x.ptr<T>(), w.ptr<T>(), s);
    });
  });
  return y;
}

// ------------------------------------------------------------------ pooling
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
  check_ndim("max_pool2d (input x, NHWC)", x, 4);
  SIMCLR_CHECK(kernel >= 1 && stride >= 1, "max_pool2d: kernel and stride must be >= 1, got kernel ", kernel,
               " stride ", stride);
  SIMCLR_CHECK(padding >= 0 && 2 * padding <= kernel, "max_pool2d: padding must be in [0, kernel/2], got ",
               padding, " for kernel ", kernel);
  const Pool2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), kernel, stride, padding};
  SIMCLR_CHECK(s.H + 2 * s.pad >= s.k && s.W + 2 * s.pad >= s.k, "max_pool2d: window ", kernel,
               " does not fit input ", x.describe(), " with padding ", padding);
  SIMCLR_CHECK(s.H * s.W <= INT32_MAX, "max_pool2d: image plane too large in ", x.describe());
  Tensor y;
  dispatch<MaxPool2dKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({s.N, s.Ho(), s.Wo(), s.C}, x.dtype(), x.device());
    Tensor arg = Tensor::empty(y.shape(), DType::i32, x.device());
    k.forward(y.ptr<T>(), arg.ptr<int32_t>(), x.ptr<T>(), s);
    record_backward("max_pool2d", y, {x}, [k, x, arg, s](const Tensor& gy) {
      Tensor gx = grad_for(x);
      if (gx.defined()) k.backward(gx.ptr<T>(), gy.ptr<T>(), arg.ptr<int32_t>(), s);
    });
  });
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  check_ndim("global_avg_pool (input x, NHWC)", x, 4);
  const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
  SIMCLR_CHECK(HW > 0, "global_avg_pool: empty image plane in ", x.describe());
  Tensor y;
  dispatch<GlobalAvgPoolKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({N, C}, x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), N, HW, C);
    record_backward("global_avg_pool", y, {x}, [k, x, N, HW, C](const Tensor& gy) {
      Tensor gx = grad_for(x);
      if (gx.defined()) k.backward(gx.ptr<T>(), gy.ptr<T>(), N, HW, C);
    });
  });
  return y;
}

// ------------------------------------------------------------------ batch norm
namespace {

void check_bn_param(const Tensor& x, const Tensor& p, const char* what, int64_t C) {
  if (!p.defined()) return;
  check_same_device("batch_norm", x, p);
  SIMCLR_CHECK(p.dtype() == x.dtype(), "batch_norm: ", what, " ", p.describe(), " must have the dtype of input ",
               x.describe());
  SIMCLR_CHECK(p.ndim() == 1 && p.size(0) == C, "batch_norm: ", what, " ", p.describe(), " must have shape [",
               C, "] (the channels, last dim, of input ", x.describe(), ")");
}

void check_bn_buffer(const Tensor& x, const Tensor& b, const char* what, int64_t C) {
  check_same_device("batch_norm", x, b);
  SIMCLR_CHECK(b.dtype() == DType::f32 || b.dtype() == DType::f64, "batch_norm: ", what, " ", b.describe(),
               " must be f32 or f64");
  SIMCLR_CHECK(b.ndim() == 1 && b.size(0) == C, "batch_norm: ", what, " ", b.describe(), " must have shape [", C,
               "] (the channels, last dim, of input ", x.describe(), ")");
}

// Calls f(kr, B{}) with kr = k.running_f32 or k.running_f64, the functions for
// running buffers of dtype dt (f32 when there are none: they get null buffers).
template <class K, class F>
void with_running(const K& k, DType dt, F&& f) {
  if (dt == DType::f64)
    f(k.running_f64, double{});
  else
    f(k.running_f32, float{});
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& opt) {
  SIMCLR_CHECK(x.ndim() >= 2, "batch_norm: input ", x.describe(), " must have at least 2 dims ([N, C] or [N,H,W,C])");
  const int64_t C = x.size(-1);
  SIMCLR_CHECK(C >= 1, "batch_norm: input ", x.describe(), " has no channels");
  const int64_t M = x.numel() / C;
  check_bn_param(x, gamma, "weight (gamma)", C);
  check_bn_param(x, beta, "bias (beta)", C);
  SIMCLR_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm: running_mean and running_var must be given together");
  const bool have_running = running_mean.defined();
  if (have_running) {
    check_bn_buffer(x, running_mean, "running_mean", C);
    check_bn_buffer(x, running_var, "running_var", C);
    SIMCLR_CHECK(running_mean.dtype() == running_var.dtype(), "batch_norm: running_mean ", running_mean.describe(),
                 " and running_var ", running_var.describe(), " must have one dtype");
  }
  SIMCLR_CHECK(opt.training || have_running, "batch_norm: eval mode needs running_mean and running_var");
  SIMCLR_CHECK(opt.eps > 0, "batch_norm: eps must be > 0, got ", opt.eps);
  SIMCLR_CHECK(opt.momentum >= 0 && opt.momentum <= 1, "batch_norm: momentum must be in [0, 1], got ", opt.momentum);
  Communicator* comm = opt.comm && opt.comm->size() > 1 ? opt.comm : nullptr;
  // (across ranks the count is known only after the all-reduce: the finalize kernel checks it)
  SIMCLR_CHECK(!opt.training || comm || M > 1, "batch_norm: training needs more than one value per channel, got ",
               M, " (input ", x.describe(), ")");

  Tensor y;
  dispatch<BatchNormKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    const DType dt = x.dtype();
    const Device dev = x.device();
    // ---- statistics, batch (training, maybe all-reduced) or running (eval), as mean[C], invstd[C] in T
    Tensor mean = Tensor::empty({C}, dt, dev), invstd = Tensor::empty({C}, dt, dev);
    Tensor stats;  // training: [mean C | M2 C | count] of the batch (merged over the ranks)
    with_running(k, have_running ? running_mean.dtype() : DType::f32, [&](const auto& kr, auto btag) {
      using B = decltype(btag);
      if (opt.training) {
        stats = Tensor::empty({2 * C + 1}, DType::f64, dev);
        k.stats(stats.ptr<double>(), x.ptr<T>(), M, C);
        if (comm) {
          const int R = comm->size();
          Tensor parts = Tensor::empty({R * (2 * C + 1)}, DType::f64, dev);  // [R][2C+1], rank order
          comm->all_gather(parts, stats);
          k.merge_stats(stats.ptr<double>(), parts.ptr<double>(), R, C);
        }
        kr.finalize(mean.ptr<T>(), invstd.ptr<T>(), ptr_or_null<B>(running_mean), ptr_or_null<B>(running_var),
                    stats.ptr<double>(), C, opt.eps, opt.momentum);
      } else {
        kr.from_running(mean.ptr<T>(), invstd.ptr<T>(), running_mean.ptr<B>(), running_var.ptr<B>(), C, opt.eps);
      }
    });
    y = Tensor::empty(x.shape(), dt, dev);
    k.forward(y.ptr<T>(), x.ptr<T>(), mean.ptr<T>(), invstd.ptr<T>(), ptr_or_null<T>(gamma), ptr_or_null<T>(beta), M,
              C, opt.relu);

    const bool training = opt.training, relu = opt.relu;
    record_backward(relu ? "batch_norm_relu" : "batch_norm", y, {x, gamma, beta},
                    [k, x, gamma, beta, y, mean, invstd, stats, training, relu, comm, M, C](const Tensor& gy) {
      bool accumulate = true;
      Tensor gx = grad_for_write(x, &accumulate), gg = grad_for(gamma), gb = grad_for(beta);
      const T* ym = relu ? y.ptr<T>() : nullptr;  // with the fused ReLU, y (the output) masks dy in the kernels
      Tensor red = Tensor::empty({2 * C}, DType::f64, x.device());  // [Σdy C | Σdy·x̂ C] of this rank
      k.backward_reduce(red.ptr<double>(), red.ptr<double>() + C, gy.ptr<T>(), x.ptr<T>(), ym, mean.ptr<T>(),
                        invstd.ptr<T>(), M, C);
      Tensor red_all = red, mdy, mdyx;  // red summed over the ranks; mean(dy), mean(dy·x̂) over the global batch
      if (gx.defined()) {
        if (training && comm) {
          red_all = red.clone();
          comm->all_reduce_sum(red_all);
        }
        mdy = Tensor::empty({C}, x.dtype(), x.device());
        mdyx = Tensor::empty({C}, x.dtype(), x.device());
      }
      // γ and β get this rank's share (the gradient all-reduce sums the ranks); eval: zero means
      k.backward_finalize(ptr_or_null<T>(gg), ptr_or_null<T>(gb), ptr_or_null<T>(mdy), ptr_or_null<T>(mdyx),
                          red.ptr<double>(), training ? red_all.ptr<double>() : nullptr, ptr_or_null<double>(stats), C);
      if (!gx.defined()) return;
      k.backward_dx(gx.ptr<T>(), accumulate, gy.ptr<T>(), x.ptr<T>(), ym, mean.ptr<T>(), invstd.ptr<T>(),
                    ptr_or_null<T>(gamma), mdy.ptr<T>(), mdyx.ptr<T>(), M, C);
    });
  });
  return y;
}

// ------------------------------------------------------------------ L2 normalisation
Tensor l2_normalize(const Tensor& x, double eps) {
  check_ndim("l2_normalize (input x, [V,D])", x, 2);
  SIMCLR_CHECK(eps > 0, "l2_normalize: eps must be > 0, got ", eps);
  const int64_t V = x.size(0), D = x.size(1);
  Tensor y;
  dispatch<L2NormalizeKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(x.shape(), x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), V, D, eps);
    record_backward("l2_normalize", y, {x}, [k, x, V, D, eps](const Tensor& gy) {
      Tensor gx = grad_for(x);
      if (gx.defined()) k.backward(gx.ptr<T>(), gy.ptr<T>(), x.ptr<T>(), V, D, eps);
    });
  });
  return y;
}

}  // namespace simclr
