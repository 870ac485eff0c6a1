// engine/dispatch.h - dtype dispatch for CPU kernels: calls f(T{}) with
// T = float or double, and fails naming the dtype otherwise.
#pragma once
#include "engine/dtype.h"

namespace simclr {

template <class F>
void dispatch_cpu_float(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    default: fail("CPU kernels support f32 and f64, not ", dtype_name(t));
  }
}

}  // namespace simclr
