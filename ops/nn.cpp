// ops/nn.cpp - convolution, pooling, batch norm, L2 normalisation and
// cross-entropy: argument checks, dispatch to the raw-pointer kernels in
// kernels/{conv2d,pool,batchnorm,norm_loss}.h, and the backward records
// (the pattern of ops/elementwise.cpp).
//
// Batch-norm running statistics are buffers, not differentiable inputs: they
// may be f32 or f64 whatever x's dtype is (parameters and buffers are f32,
// float64 gradient checks run without running statistics). The update is
// computed in double and stored in the buffer's dtype; in eval they are
// converted to x's dtype. gamma/beta must match x's dtype (their gradients do).
// With a communicator, its object must outlive the backward pass.
#include <cmath>
#include <vector>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/dispatch.h"
#include "engine/op_table.h"
#include "ops/ops.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/norm_loss.h"
#include "kernels/pool.h"

namespace simclr {

namespace {
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
}  // namespace

// ------------------------------------------------------------------ conv2d
Tensor conv2d(const Tensor& x, const Tensor& w, int stride, int padding) {
  check_supported(Op::conv2d, x.device(), x.dtype());
  check_ndim("conv2d (input x, NHWC)", x, 4);
  check_ndim("conv2d (weight w, OHWI)", w, 4);
  check_same_device("conv2d", x, w);
  check_same_dtype("conv2d", x, w);
  SIMCLR_CHECK(stride >= 1, "conv2d: stride must be >= 1, got ", stride);
  SIMCLR_CHECK(padding >= 0, "conv2d: padding must be >= 0, got ", padding);
  const cpu::Conv2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(1), w.size(2),
                           stride, padding};
  SIMCLR_CHECK(w.size(3) == s.C, "conv2d: input ", x.describe(), " has ", s.C, " channels but weight ",
               w.describe(), " expects ", w.size(3));
  SIMCLR_CHECK(s.O >= 1 && s.kH >= 1 && s.kW >= 1, "conv2d: empty weight ", w.describe());
  SIMCLR_CHECK(s.H + 2 * s.pad >= s.kH && s.W + 2 * s.pad >= s.kW, "conv2d: kernel ", s.kH, "x", s.kW,
               " does not fit input ", x.describe(), " with padding ", padding);
  Tensor y = Tensor::empty({s.N, s.Ho(), s.Wo(), s.O}, x.dtype(), x.device());
  // f32 runs oneDNN (kernels/cpu/conv2d_dnnl.cpp) when available; f64 (gradient
  // checks) and builds without oneDNN run the im2col reference.
  const bool fast = x.dtype() == DType::f32 && cpu::conv2d_fast_available() && cpu::conv2d_fast_supports(s);
  if (fast) {
    cpu::conv2d_forward_fast(y.data<float>(), x.data<float>(), w.data<float>(), s);
  } else {
    dispatch_cpu_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu::conv2d_forward(y.data<T>(), x.data<T>(), w.data<T>(), s);
    });
  }
  if (needs_grad({x, w})) {
    y.set_requires_grad();
    record("conv2d", [x, w, y, s, fast]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      if (fast) {
        bool accumulate = true;
        Tensor gx = grad_for_write(x, &accumulate), gw = grad_for(w);
        cpu::conv2d_backward_fast(ptr_or_null<float>(gx), accumulate, ptr_or_null<float>(gw), gy.data<float>(),
                                  x.data<float>(), w.data<float>(), s);
        return;
      }
      Tensor gx = grad_for(x), gw = grad_for(w);
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::conv2d_backward(ptr_or_null<T>(gx), ptr_or_null<T>(gw), gy.data<T>(), x.data<T>(), w.data<T>(), s);
      });
    });
  }
  return y;
}

// ------------------------------------------------------------------ pooling
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
  check_supported(Op::max_pool2d, x.device(), x.dtype());
  check_ndim("max_pool2d (input x, NHWC)", x, 4);
  SIMCLR_CHECK(kernel >= 1 && stride >= 1, "max_pool2d: kernel and stride must be >= 1, got kernel ", kernel,
               " stride ", stride);
  SIMCLR_CHECK(padding >= 0 && 2 * padding <= kernel, "max_pool2d: padding must be in [0, kernel/2], got ",
               padding, " for kernel ", kernel);
  const cpu::Pool2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), kernel, stride, padding};
  SIMCLR_CHECK(s.H + 2 * s.pad >= s.k && s.W + 2 * s.pad >= s.k, "max_pool2d: window ", kernel,
               " does not fit input ", x.describe(), " with padding ", padding);
  SIMCLR_CHECK(s.H * s.W <= INT32_MAX, "max_pool2d: image plane too large in ", x.describe());
  Tensor y = Tensor::empty({s.N, s.Ho(), s.Wo(), s.C}, x.dtype(), x.device());
  Tensor arg = Tensor::empty(y.shape(), DType::i32, x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::max_pool2d_forward(y.data<T>(), arg.data<int32_t>(), x.data<T>(), s);
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("max_pool2d", [x, y, arg, s]() {
      Tensor gy = y.grad(), gx = grad_for(x);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::max_pool2d_backward(gx.data<T>(), gy.data<T>(), arg.data<int32_t>(), s);
      });
    });
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  check_supported(Op::global_avg_pool, x.device(), x.dtype());
  check_ndim("global_avg_pool (input x, NHWC)", x, 4);
  const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
  SIMCLR_CHECK(HW > 0, "global_avg_pool: empty image plane in ", x.describe());
  Tensor y = Tensor::empty({N, C}, x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::global_avg_pool_forward(y.data<T>(), x.data<T>(), N, HW, C);
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("global_avg_pool", [x, y, N, HW, C]() {
      Tensor gy = y.grad(), gx = grad_for(x);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::global_avg_pool_backward(gx.data<T>(), gy.data<T>(), N, HW, C);
      });
    });
  }
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

// buf = (1 - m)·buf + m·v, in double, stored in buf's dtype.
void running_update(const Tensor& buf, const std::vector<double>& v, double m) {
  dispatch_cpu_float(buf.dtype(), [&](auto tag) {
    using B = decltype(tag);
    B* p = buf.data<B>();
    for (size_t c = 0; c < v.size(); c++) p[c] = static_cast<B>((1 - m) * static_cast<double>(p[c]) + m * v[c]);
  });
}

// A [C] tensor of dtype dt holding v.
Tensor per_channel(const std::vector<double>& v, DType dt, Device dev) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, dt, dev);
  dispatch_cpu_float(dt, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (size_t c = 0; c < v.size(); c++) p[c] = static_cast<T>(v[c]);
  });
  return t;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& opt) {
  check_supported(Op::batch_norm, x.device(), x.dtype());
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
  }
  SIMCLR_CHECK(opt.training || have_running, "batch_norm: eval mode needs running_mean and running_var");
  SIMCLR_CHECK(opt.eps > 0, "batch_norm: eps must be > 0, got ", opt.eps);
  SIMCLR_CHECK(opt.momentum >= 0 && opt.momentum <= 1, "batch_norm: momentum must be in [0, 1], got ", opt.momentum);
  Communicator* comm = opt.comm && opt.comm->size() > 1 ? opt.comm : nullptr;

  // ---- statistics: batch (training, maybe all-reduced) or running (eval)
  std::vector<double> mean_d(C), invstd_d(C);
  double count = static_cast<double>(M);  // rows over all ranks
  if (opt.training) {
    Tensor stats = Tensor::zeros({2 * C + 1}, DType::f64, x.device());  // [sum C | sumsq C | count]
    double* st = stats.data<double>();
    dispatch_cpu_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      cpu::batchnorm_stats(st, st + C, x.data<T>(), M, C);
    });
    st[2 * C] = static_cast<double>(M);
    if (comm) comm->all_reduce_sum(stats);
    count = st[2 * C];
    SIMCLR_CHECK(count > 1, "batch_norm: training needs more than one value per channel, got ", count,
                 " (input ", x.describe(), ")");
    std::vector<double> var_unbiased(C);
    for (int64_t c = 0; c < C; c++) {
      const double mu = st[c] / count;
      const double var = std::max(st[C + c] / count - mu * mu, 0.0);  // biased, for normalising
      mean_d[c] = mu;
      invstd_d[c] = 1.0 / std::sqrt(var + opt.eps);
      var_unbiased[c] = var * count / (count - 1);
    }
    if (have_running) {
      running_update(running_mean, mean_d, opt.momentum);
      running_update(running_var, var_unbiased, opt.momentum);
    }
  } else {
    for (int64_t c = 0; c < C; c++) {
      mean_d[c] = running_mean.at(c);
      invstd_d[c] = 1.0 / std::sqrt(running_var.at(c) + opt.eps);
    }
  }
  Tensor mean = per_channel(mean_d, x.dtype(), x.device());
  Tensor invstd = per_channel(invstd_d, x.dtype(), x.device());

  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::batchnorm_forward(y.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(gamma),
                           ptr_or_null<T>(beta), M, C, opt.relu);
  });

  if (needs_grad({x, gamma, beta})) {
    y.set_requires_grad();
    const bool training = opt.training, relu = opt.relu;
    record(relu ? "batch_norm_relu" : "batch_norm", [x, gamma, beta, y, mean, invstd, training, relu, comm, count, M,
                                                     C]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      bool accumulate = true;
      Tensor gx = grad_for_write(x, &accumulate), gg = grad_for(gamma), gb = grad_for(beta);
      Tensor red = Tensor::zeros({2 * C}, DType::f64, x.device());  // [Σdy C | Σdy·x̂ C]
      double* r = red.data<double>();
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        // with the fused ReLU, y (the output) masks dy inside the kernels
        cpu::batchnorm_backward_reduce(r, r + C, gy.data<T>(), x.data<T>(), relu ? y.data<T>() : nullptr,
                                       mean.data<T>(), invstd.data<T>(), M, C);
        // γ and β get this rank's share; the gradient all-reduce sums the ranks.
        if (gg.defined())
          for (int64_t c = 0; c < C; c++) gg.data<T>()[c] += static_cast<T>(r[C + c]);
        if (gb.defined())
          for (int64_t c = 0; c < C; c++) gb.data<T>()[c] += static_cast<T>(r[c]);
      });
      if (!gx.defined()) return;
      std::vector<double> mean_dy(C, 0.0), mean_dy_xhat(C, 0.0);  // zero in eval: statistics are constants
      if (training) {
        if (comm) comm->all_reduce_sum(red);
        for (int64_t c = 0; c < C; c++) mean_dy[c] = r[c] / count, mean_dy_xhat[c] = r[C + c] / count;
      }
      Tensor mdy = per_channel(mean_dy, x.dtype(), x.device());
      Tensor mdyx = per_channel(mean_dy_xhat, x.dtype(), x.device());
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::batchnorm_backward_dx(gx.data<T>(), accumulate, gy.data<T>(), x.data<T>(), relu ? y.data<T>() : nullptr,
                                   mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(gamma), mdy.data<T>(),
                                   mdyx.data<T>(), M, C);
      });
    });
  }
  return y;
}

// ------------------------------------------------------------------ L2 normalisation
Tensor l2_normalize(const Tensor& x, double eps) {
  check_supported(Op::l2_normalize, x.device(), x.dtype());
  check_ndim("l2_normalize (input x, [V,D])", x, 2);
  SIMCLR_CHECK(eps > 0, "l2_normalize: eps must be > 0, got ", eps);
  const int64_t V = x.size(0), D = x.size(1);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::l2_normalize_forward(y.data<T>(), x.data<T>(), V, D, eps);
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("l2_normalize", [x, y, V, D, eps]() {
      Tensor gy = y.grad(), gx = grad_for(x);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::l2_normalize_backward(gx.data<T>(), gy.data<T>(), x.data<T>(), V, D, eps);
      });
    });
  }
  return y;
}

}  // namespace simclr
