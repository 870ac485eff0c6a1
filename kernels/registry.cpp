// kernels/registry.cpp - supports() and the kernel lookup over the backends'
// tables (kernels/registry.h).
#include "kernels/registry.h"

namespace simclr {

#ifndef SIMCLR_WITH_CUDA
std::span<const KernelRow> cuda_kernel_table() { return {}; }
#endif

std::span<const KernelRow> kernel_table(DeviceKind backend) {
  switch (backend) {
    case DeviceKind::cpu: return cpu_kernel_table();
    case DeviceKind::cuda: return cuda_kernel_table();
  }
  return {};
}

namespace {
const KernelRow* find_row(DeviceKind backend, Op op, DType dtype) {
  for (const KernelRow& r : kernel_table(backend))
    if (r.op == op && r.dtype == dtype) return &r;
  return nullptr;
}
}  // namespace

bool supports(DeviceKind backend, Op op, DType dtype) { return find_row(backend, op, dtype) != nullptr; }

void check_supported(Op op, Device device, DType dtype) {
  SIMCLR_CHECK(supports(device.kind, op, dtype), "op ", op_name(op), " is not supported on ", device.str(),
               " for dtype ", dtype_name(dtype));
}

const void* find_kernels(Op op, Device device, DType dtype) {
  const KernelRow* r = find_row(device.kind, op, dtype);
  SIMCLR_CHECK(r != nullptr, "op ", op_name(op), " is not supported on ", device.str(), " for dtype ",
               dtype_name(dtype));
  return r->kernels;
}

}  // namespace simclr
