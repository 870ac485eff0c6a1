// kernels/registry.h - the one dispatch point: (op, device, dtype) -> kernels.
//
// Every op family header (kernels/X.h) declares, beside its raw-pointer
// contract, one struct template per op: the op's kernel set for element type T,
//
//     template <class T> struct ReluKernels {
//       static constexpr Op op = Op::relu;
//       void (*forward)(T* y, const T* x, int64_t n);
//       void (*backward)(T* dx, bool accumulate, const T* dy, const T* y, int64_t n);
//     };
//
// Each backend lists what it implements in ONE table beside its kernels:
// kernels/cpu/table.cpp (cpu_kernel_table) and kernels/cuda/table.cu
// (gpu::kernel_table; compiled a second time as emu::kernel_table for the
// emulator). A row is `kernel_row(set)`: the op and dtype are taken from the
// set's type, so a row cannot claim the wrong op or dtype. supports() reads
// those tables and nothing else; an op body asks for its kernels with
//
//     dispatch<ReluKernels>(x.device(), x.dtype(), [&](const auto& k, auto tag) {
//       using T = decltype(tag);
//       k.forward(y.ptr<T>(), x.ptr<T>(), x.numel());
//     });
//
// which fails, naming op, device and dtype, when no backend row exists.
//
// The dispatch lambda allocates the outputs, calls the kernels with the
// operands' ptr<T>() (Tensor::data<T>() is host access and fails on a device
// tensor) and records the backward capturing `k` (a copy of the set: a few
// function pointers), so forward and backward run the same backend's kernels.
// A kernel set may hold data (NtxentKernels::min_tau) and groups of functions
// for a second element type the op supports (CrossEntropyKernels::i32 / i64
// for the labels, BatchNormKernels::running_f32 / running_f64 for the running
// statistics).
//
// CUDA twins launch on the engine's current stream of the current device
// (engine/device.h cuda_current_stream); every kernel function takes the
// contract's pointers and sizes only, so one signature serves both backends
// (a table may wrap a richer launcher, as kernels/cuda/table.cu does).
//
// Adding an op:
//   1. engine/op_table.h/.cpp: its Op and name.
//   2. kernels/X.h: its kernel set XKernels<T> (static constexpr Op op = ...)
//      and the raw-pointer contract of each function.
//   3. kernels/cpu/X.cpp: the reference kernels, and their two rows (f32, f64)
//      in kernels/cpu/table.cpp.
//   4. kernels/cuda/X.cu (when it has a CUDA twin): the kernels, and a row per
//      dtype in kernels/cuda/table.cu (the emulator builds the same rows).
//   5. ops/ or losses/: the op body (checks, dispatch<XKernels>, record_backward).
//   6. One test row (the op test table; tests/test_dispatch.cpp fails while an
//      Op has no f32 and f64 CPU row).
#pragma once
#include <span>

#include "engine/dtype.h"
#include "engine/op_table.h"

namespace simclr {

struct KernelRow {
  Op op;
  DType dtype;
  const void* kernels;  // a `const K<T>*` with K<T>::op == op and dtype_of<T> == dtype
};

// A table row for the kernel set `k` (a K<T> as above).
template <template <class> class K, class T>
constexpr KernelRow kernel_row(const K<T>& k) {
  return KernelRow{K<T>::op, dtype_of<T>::value, &k};
}

// The backends' tables (rows in any order; one row per (op, dtype)).
std::span<const KernelRow> cpu_kernel_table();   // kernels/cpu/table.cpp
std::span<const KernelRow> cuda_kernel_table();  // gpu::kernel_table(); empty without the CUDA backend
// kernels/cuda/table.cu as built by nvcc (simclr_core with the CUDA backend)
// and as built for the kernel emulator (simclr_emu: the same rows, their
// kernels run on the CPU; tests/emu).
namespace gpu {
std::span<const KernelRow> kernel_table();
}
namespace emu {
std::span<const KernelRow> kernel_table();
}

// The table of a device kind: cpu -> the CPU backend, cuda -> the CUDA backend,
// emu -> the CUDA backend's rows built for the emulator (empty without it).
std::span<const KernelRow> kernel_table(DeviceKind backend);
// True when this build has the kernel emulator (the emulated device works).
bool emulator_built();

// The truth about what runs where: true when `backend`'s table has a row for (op, dtype).
bool supports(DeviceKind backend, Op op, DType dtype);
// Throws "op X is not supported on <device> for dtype Y" unless supported.
void check_supported(Op op, Device device, DType dtype);
// The kernel set of (op, device kind, dtype), type-erased; throws like check_supported.
const void* find_kernels(Op op, Device device, DType dtype);

template <template <class> class K, class T>
const K<T>& kernels_for(Device device) {
  return *static_cast<const K<T>*>(find_kernels(K<float>::op, device, dtype_of<T>::value));
}

// Calls f(kernels, T{}) with the kernel set K<T> of the backend of `device` for
// `dtype` (T = float, double or bf16). Unsupported combinations throw naming op,
// device and dtype; f is instantiated for every T, so its body must compile for
// each (it only passes typed pointers to the kernel set).
template <template <class> class K, class F>
void dispatch(Device device, DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f(kernels_for<K, float>(device), float{}); return;
    case DType::f64: f(kernels_for<K, double>(device), double{}); return;
    case DType::bf16: f(kernels_for<K, bf16>(device), bf16{}); return;
    default: check_supported(K<float>::op, device, dtype);  // throws
  }
}

}  // namespace simclr
