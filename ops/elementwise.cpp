// ops/elementwise.cpp - elementwise, reduction and linear ops with their
// backward. Every op body follows one pattern: argument checks (metadata
// only), then dispatch<K>(device, dtype, ...) (kernels/registry.h) which finds
// the backend's kernel set K<T> or fails naming op, device and dtype; inside,
// the outputs are allocated on the inputs' device, the kernels get ptr<T>()
// of every operand, and record_backward (ops/record.h) keeps the same kernel
// set for the backward. No element is touched here: one-element results and
// gradients stay where they live, so the same body serves every backend.
// Convolution, pooling, batch norm and L2 normalisation live in ops/nn.cpp;
// the losses in losses/.
#include "ops/ops.h"

#include "kernels/elementwise.h"
#include "kernels/registry.h"
#include "ops/record.h"

namespace simclr {

namespace {
// a and b: same device, dtype and shape.
void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  check_shape(op, b, a.shape());
}
}  // namespace

Tensor relu(const Tensor& x) {
  Tensor y;
  dispatch<ReluKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(x.shape(), x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), x.numel());
    record_backward("relu", y, {x}, [k, x, y](const Tensor& gy) {
      bool accumulate = true;
      Tensor gx = grad_for_write(x, &accumulate);
      if (gx.defined()) k.backward(gx.ptr<T>(), accumulate, gy.ptr<T>(), y.ptr<T>(), x.numel());
    });
  });
  return y;
}

namespace {
// add and add_relu: y = a + b (then max(., 0)). Their backward kernels differ
// only in add_relu's reading the output y for the ReLU mask.
template <template <class> class K>
Tensor residual_sum(const char* name, const Tensor& a, const Tensor& b) {
  check_pair(name, a, b);
  Tensor y;
  dispatch<K>(a.device(), a.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(a.shape(), a.dtype(), a.device());
    k.forward(y.ptr<T>(), a.ptr<T>(), b.ptr<T>(), a.numel());
    record_backward(name, y, {a, b}, [k, a, b, y](const Tensor& gy) {
      bool acc_a = true, acc_b = true;
      Tensor ga = grad_for_write(a, &acc_a);
      Tensor gb = grad_for_write(b, &acc_b);  // after a's: add(x, x) accumulates the second share
      if constexpr (K<T>::op == Op::add_relu)
        k.backward(ptr_or_null<T>(ga), acc_a, ptr_or_null<T>(gb), acc_b, gy.ptr<T>(), y.ptr<T>(), a.numel());
      else
        k.backward(ptr_or_null<T>(ga), acc_a, ptr_or_null<T>(gb), acc_b, gy.ptr<T>(), a.numel());
    });
  });
  return y;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return residual_sum<AddKernels>("add", a, b); }

Tensor add_relu(const Tensor& a, const Tensor& b) { return residual_sum<AddReluKernels>("add_relu", a, b); }

Tensor sum_product(const Tensor& a, const Tensor& r) {
  check_pair("sum_product", a, r);
  Tensor y;
  dispatch<SumProductKernels>(a.device(), a.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({1}, a.dtype(), a.device());
    k.forward(y.ptr<T>(), a.ptr<T>(), r.ptr<T>(), a.numel());
    record_backward("sum_product", y, {a}, [k, a, r](const Tensor& gy) {
      Tensor ga = grad_for(a);
      if (ga.defined()) k.backward(ga.ptr<T>(), r.ptr<T>(), gy.ptr<T>(), a.numel());
    });
  });
  return y;
}

Tensor mean(const Tensor& x) {
  SIMCLR_CHECK(x.numel() > 0, "mean of an empty tensor ", x.describe());
  Tensor y;
  dispatch<MeanKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({1}, x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), x.numel());
    record_backward("mean", y, {x}, [k, x](const Tensor& gy) {
      Tensor gx = grad_for(x);
      if (gx.defined()) k.backward(gx.ptr<T>(), gy.ptr<T>(), x.numel());
    });
  });
  return y;
}

Tensor scale(const Tensor& x, double s) {
  Tensor y;
  dispatch<ScaleKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty(x.shape(), x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), s, x.numel());
    record_backward("scale", y, {x}, [k, x, s](const Tensor& gy) {
      Tensor gx = grad_for(x);
      if (gx.defined()) k.backward(gx.ptr<T>(), gy.ptr<T>(), s, x.numel());
    });
  });
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
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
  Tensor y;
  dispatch<LinearKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    y = Tensor::empty({N, O}, x.dtype(), x.device());
    k.forward(y.ptr<T>(), x.ptr<T>(), w.ptr<T>(), ptr_or_null<T>(b), N, I, O);
    record_backward("linear", y, {x, w, b}, [k, x, w, b, N, I, O](const Tensor& gy) {
      Tensor gx = grad_for(x), gw = grad_for(w), gb = grad_for(b);
      k.backward(ptr_or_null<T>(gx), ptr_or_null<T>(gw), ptr_or_null<T>(gb), gy.ptr<T>(), x.ptr<T>(), w.ptr<T>(),
                 N, I, O);
    });
  });
  return y;
}

}  // namespace simclr
