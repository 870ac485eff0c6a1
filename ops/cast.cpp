// ops/cast.cpp - cast(x, dtype): the differentiable element type conversion
// (kernels/cast.h). Forward y = convert(x) with the kernel set of x's dtype;
// backward dx (+)= convert(dy) into x's dtype with the kernel set of y's dtype
// (each set converts FROM its own type), so the gradient of a bf16 copy of an
// f32 master weight lands, summed in f32, in the master's f32 gradient.
#include "kernels/cast.h"
#include "kernels/registry.h"
#include "ops/ops.h"
#include "ops/record.h"

namespace simclr {

namespace {
// y (+)= convert(x) into y's dtype, with x's backend kernel set.
void convert_into(const Tensor& y, bool accumulate, const Tensor& x) {
  dispatch<CastKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
    using S = decltype(tag);
    const S* xp = x.ptr<S>();
    const int64_t n = x.numel();
    auto need = [&](const void* f) {
      SIMCLR_CHECK(f != nullptr, "cast from ", dtype_name(x.dtype()), " to ", dtype_name(y.dtype()),
                   " is not supported on ", x.device().str());
    };
    switch (y.dtype()) {
      case DType::f32: need(reinterpret_cast<const void*>(k.to_f32)); k.to_f32(y.ptr<float>(), accumulate, xp, n); return;
      case DType::f64: need(reinterpret_cast<const void*>(k.to_f64)); k.to_f64(y.ptr<double>(), accumulate, xp, n); return;
      case DType::bf16: need(reinterpret_cast<const void*>(k.to_bf16)); k.to_bf16(y.ptr<bf16>(), accumulate, xp, n); return;
      default: SIMCLR_CHECK(false, "cast: no target dtype ", dtype_name(y.dtype()));
    }
  });
}
}  // namespace

Tensor cast(const Tensor& x, DType dtype) {
  SIMCLR_CHECK(x.defined(), "cast: undefined input");
  if (x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype, x.device());
  convert_into(y, false, x);
  record_backward("cast", y, {x}, [x](const Tensor& gy) {
    bool accumulate = true;
    Tensor gx = grad_for_write(x, &accumulate);
    if (gx.defined()) convert_into(gx, accumulate, gy);
  });
  return y;
}

}  // namespace simclr
