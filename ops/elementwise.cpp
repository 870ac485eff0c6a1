// ops/elementwise.cpp - elementwise, reduction and linear ops with their backward
// (the pattern every op follows: check, dispatch, record). Convolution,
// pooling, batch norm and the losses live in ops/nn.cpp; NT-Xent in
// losses/ntxent.cpp.
#include "ops/ops.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/op_table.h"
#include "kernels/elementwise.h"

namespace simclr {

Tensor relu(const Tensor& x) {
  check_supported(Op::relu, x.device(), x.dtype());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::relu_forward(y.data<T>(), x.data<T>(), x.numel());
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("relu", [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      bool accumulate = true;
      Tensor gx = grad_for_write(x, &accumulate);
      if (!gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::relu_backward(gx.data<T>(), accumulate, gy.data<T>(), y.data<T>(), x.numel());
      });
    });
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  check_supported(Op::add, a.device(), a.dtype());
  check_same_device("add", a, b);
  check_same_dtype("add", a, b);
  check_shape("add", b, a.shape());
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch_cpu_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::add_forward(y.data<T>(), a.data<T>(), b.data<T>(), a.numel());
  });
  if (needs_grad({a, b})) {
    y.set_requires_grad();
    record("add", [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      dispatch_cpu_float(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        for (const Tensor& in : {a, b}) {
          bool accumulate = true;
          Tensor g = grad_for_write(in, &accumulate);
          if (!g.defined()) continue;
          if (accumulate)
            cpu::axpy(g.data<T>(), gy.data<T>(), T(1), a.numel());
          else
            g.copy_from(gy);  // a fresh gradient: a copy, no zero fill and add
        }
      });
    });
  }
  return y;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  check_supported(Op::add_relu, a.device(), a.dtype());
  check_same_device("add_relu", a, b);
  check_same_dtype("add_relu", a, b);
  check_shape("add_relu", b, a.shape());
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch_cpu_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::add_relu_forward(y.data<T>(), a.data<T>(), b.data<T>(), a.numel());
  });
  if (needs_grad({a, b})) {
    y.set_requires_grad();
    record("add_relu", [a, b, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      bool acc_a = true, acc_b = true;
      Tensor ga = grad_for_write(a, &acc_a);
      Tensor gb = grad_for_write(b, &acc_b);  // after a's: add_relu(x, x) accumulates the second share
      dispatch_cpu_float(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
        cpu::add_relu_backward(ptr(ga), acc_a, ptr(gb), acc_b, gy.data<T>(), y.data<T>(), a.numel());
      });
    });
  }
  return y;
}

Tensor sum_product(const Tensor& a, const Tensor& r) {
  check_supported(Op::sum_product, a.device(), a.dtype());
  check_same_device("sum_product", a, r);
  check_same_dtype("sum_product", a, r);
  check_shape("sum_product", r, a.shape());
  Tensor y = Tensor::empty({1}, a.dtype(), a.device());
  dispatch_cpu_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    y.data<T>()[0] = static_cast<T>(cpu::dot(a.data<T>(), r.data<T>(), a.numel()));
  });
  if (needs_grad({a})) {
    y.set_requires_grad();
    record("sum_product", [a, r, y]() {
      Tensor gy = y.grad(), ga = grad_for(a);
      if (!gy.defined() || !ga.defined()) return;
      dispatch_cpu_float(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::axpy(ga.data<T>(), r.data<T>(), gy.data<T>()[0], a.numel());
      });
    });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  check_supported(Op::mean, x.device(), x.dtype());
  SIMCLR_CHECK(x.numel() > 0, "mean of an empty tensor ", x.describe());
  Tensor y = Tensor::empty({1}, x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    double s = 0;
    for (int64_t i = 0; i < x.numel(); i++) s += static_cast<double>(p[i]);
    y.data<T>()[0] = static_cast<T>(s / static_cast<double>(x.numel()));
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("mean", [x, y]() {
      Tensor gy = y.grad(), gx = grad_for(x);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T g = gy.data<T>()[0] / static_cast<T>(x.numel());
        T* d = gx.data<T>();
        for (int64_t i = 0; i < x.numel(); i++) d[i] += g;
      });
    });
  }
  return y;
}

Tensor scale(const Tensor& x, double s) {
  check_supported(Op::scale, x.device(), x.dtype());
  Tensor y = Tensor::zeros(x.shape(), x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::axpy(y.data<T>(), x.data<T>(), static_cast<T>(s), x.numel());
  });
  if (needs_grad({x})) {
    y.set_requires_grad();
    record("scale", [x, y, s]() {
      Tensor gy = y.grad(), gx = grad_for(x);
      if (!gy.defined() || !gx.defined()) return;
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::axpy(gx.data<T>(), gy.data<T>(), static_cast<T>(s), x.numel());
      });
    });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_supported(Op::linear, x.device(), x.dtype());
  check_ndim("linear", x, 2);
  check_ndim("linear", w, 2);
  check_same_device("linear", x, w);
  check_same_dtype("linear", x, w);
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  SIMCLR_CHECK(w.size(1) == I, "linear: input ", x.describe(), " has ", I, " features but weight ",
               w.describe(), " expects ", w.size(1));
  if (b.defined()) {
    check_same_device("linear", x, b);
    check_same_dtype("linear", x, b);
    check_shape("linear (bias)", b, {O});
  }
  Tensor y = Tensor::empty({N, O}, x.dtype(), x.device());
  dispatch_cpu_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::linear_forward(y.data<T>(), x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, N, I, O);
  });
  if (needs_grad({x, w, b})) {
    y.set_requires_grad();
    record("linear", [x, w, b, y, N, I, O]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      Tensor gx = grad_for(x), gw = grad_for(w), gb = grad_for(b);
      dispatch_cpu_float(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
        cpu::linear_backward(ptr(gx), ptr(gw), ptr(gb), gy.data<T>(), x.data<T>(), w.data<T>(), N, I, O);
      });
    });
  }
  return y;
}

}  // namespace simclr
