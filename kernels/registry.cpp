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
    case DeviceKind::emu:
#ifdef SIMCLR_HAVE_EMU
      return emu::kernel_table();
#else
      return {};
#endif
  }
  return {};
}

bool emulator_built() {
#ifdef SIMCLR_HAVE_EMU
  return true;
#else
  return false;
#endif
}

namespace {
const KernelRow* find_row(DeviceKind backend, Op op, DType dtype) {
  for (const KernelRow& r : kernel_table(backend))
    if (r.op == op && r.dtype == dtype) return &r;
  return nullptr;
}
}  // namespace

bool supports(DeviceKind backend, Op op, DType dtype) { return find_row(backend, op, dtype) != nullptr; }

namespace {
[[noreturn]] void fail_unsupported(Op op, Device device, DType dtype) {
  if (device.is_emu() && !emulator_built())
    fail("op ", op_name(op), " on the emulated device: this build has no kernel emulator (configured with "
         "-DSIMCLR_EMU=OFF or without the CUDA toolkit's headers)");
  fail("op ", op_name(op), " is not supported on ", device.str(), " for dtype ", dtype_name(dtype));
}
}  // namespace

void check_supported(Op op, Device device, DType dtype) {
  if (!supports(device.kind, op, dtype)) fail_unsupported(op, device, dtype);
}

const void* find_kernels(Op op, Device device, DType dtype) {
  const KernelRow* r = find_row(device.kind, op, dtype);
  if (r == nullptr) fail_unsupported(op, device, dtype);
  return r->kernels;
}

}  // namespace simclr
