// kernels/cuda/common.cuh - what every kernels/cuda/*.cu includes first.
//
// Each .cu here is compiled twice:
//   - by nvcc into simclr_core (the real kernels), SIMCLR_EMU undefined;
//   - by the host C++ compiler into simclr_emu with SIMCLR_EMU=1, where
//     kernels/emu/cuda_emu.h stands in for the CUDA runtime and the kernels run on
//     the CPU (tests/emu, ctest "emu[forward]" / "emu[reverse]").
// Both can be linked into one program (kernel_emu_tests links both), so all
// kernels and launchers live in `namespace simclr::SIMCLR_KNS`: simclr::gpu in
// the real build, simclr::emu in the emulated one.
//
// Conventions for a kernel family (e.g. kernels/ntxent.h + kernels/cuda/ntxent.cu):
//   - The family header declares its launchers once inside a macro and
//     expands it in both namespaces, so tests can call either build:
//         #define SIMCLR_NTXENT_LAUNCHERS <backslash>
//           void ntxent_forward(float* loss, const float* z, int n, int d, cudaStream_t stream);
//         namespace simclr::gpu { SIMCLR_NTXENT_LAUNCHERS }
//         namespace simclr::emu { SIMCLR_NTXENT_LAUNCHERS }
//     For cudaStream_t the header needs only
//         struct CUstream_st; typedef struct CUstream_st* cudaStream_t;
//     (the toolkit's own typedef, so it agrees with <cuda_runtime.h>).
//   - The .cu opens `namespace simclr::SIMCLR_KNS {` after its includes and
//     puts kernels and launchers inside.
//   - Launch only through launch(...) / launch_nobarrier(...) below, never <<<>>>.
//   - Check runtime calls with CUDA_CHECK(call) (both builds).
//   - Shared memory: plain `__shared__ T a[N];` works in both builds (in the
//     emulator a static array, one per kernel, which ASan checks), but prefer
//         SIMCLR_SHARED(float, tile, [32][33]);      // bounds-checked under emulation
//         SIMCLR_DYNAMIC_SHARED(float, smem);        // extern __shared__, bounds-checked
//     Take raw addresses with &tile[i][j] / &smem[i]; `auto p = smem + k;`
//     keeps the check, `float* p = smem + k;` drops it.
//   - Barrier-free kernels may be launched with launch_nobarrier (a plain loop
//     over threads under emulation: about 3x cheaper). A __syncthreads or
//     warp collective in such a kernel is reported as an error.
//   - Tensor-core instructions only through kernels/cuda/mma.cuh.
//   - What the engine's ops may call is listed in kernels/cuda/table.cu, one
//     row per (op, dtype) in the op's shared kernel set (kernels/registry.h);
//     the launchers take a stream, the table's wrappers pass the engine's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#ifdef SIMCLR_EMU
#include "kernels/emu/cuda_emu.h"
#define SIMCLR_KNS emu
#else
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/check.h"
#include "engine/cuda_check.h"
#define SIMCLR_KNS gpu
#endif

// `#pragma unroll` for nvcc; nothing for the emulated build (g++ would warn).
#ifdef SIMCLR_EMU
#define SIMCLR_UNROLL
#else
#define SIMCLR_UNROLL _Pragma("unroll")
#endif

namespace simclr::SIMCLR_KNS {

__host__ __device__ constexpr inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The device element type of an engine element type: ::simclr::bf16 ->
// __nv_bfloat16 (the same bits), float -> float. dev(p) reinterprets a
// launcher's pointer for its kernels.
template <class T>
using device_type_t = std::conditional_t<std::is_same_v<T, float>, float, __nv_bfloat16>;
template <class T>
device_type_t<T>* dev(T* p) {
  return reinterpret_cast<device_type_t<T>*>(p);
}
template <class T>
const device_type_t<T>* dev(const T* p) {
  return reinterpret_cast<const device_type_t<T>*>(p);
}

// Device element <-> fp32 (bf16: round to nearest even on the way back).
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class S>
__device__ __forceinline__ S from_float(float x) {
  if constexpr (std::is_same_v<S, float>)
    return x;
  else
    return __float2bfloat16_rn(x);
}

namespace detail {

#ifndef SIMCLR_EMU
[[noreturn]] inline void launch_failed(const char* text, const char* file, int line, dim3 grid, dim3 block,
                                       size_t shared_bytes, cudaError_t e) {
  int dev = -1;
  cudaGetDevice(&dev);
  ::simclr::fail("CUDA error: ", cudaGetErrorString(e), " launching ", launch_kernel_name(text), " (grid ", grid.x,
                 "x", grid.y, "x", grid.z, ", block ", block.x, "x", block.y, "x", block.z, ", ", shared_bytes,
                 " bytes dynamic shared memory) at ", file, ":", line, " on device ", dev);
}

template <class... P, class... A>
void launch_at(const char* text, const char* file, int line, bool /*barrier_free*/, void (*kernel)(P...), dim3 grid,
               dim3 block, size_t shared_bytes, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: wrong number of kernel arguments");
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<A>(args)...);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) launch_failed(text, file, line, grid, block, shared_bytes, e);
}
#endif
}  // namespace detail

}  // namespace simclr::SIMCLR_KNS

// launch(kernel, grid, block, shared_bytes, stream, args...): a checked kernel
// launch (real build: <<<>>> + cudaGetLastError, the error naming kernel,
// file and line; emulated build: runs the kernel on the CPU). Template
// kernels need no parentheses: launch(k<float, 256>, grid, ...).
#define launch(...) \
  ::simclr::SIMCLR_KNS::detail::launch_at(#__VA_ARGS__, __FILE__, __LINE__, false, __VA_ARGS__)
// The same for a kernel without __syncthreads and warp collectives.
#define launch_nobarrier(...) \
  ::simclr::SIMCLR_KNS::detail::launch_at(#__VA_ARGS__, __FILE__, __LINE__, true, __VA_ARGS__)

#ifdef SIMCLR_EMU
#define SIMCLR_SHARED(T, name, dims) static ::simclr::emu::SharedArray<T dims> name(#name, __FILE__, __LINE__)
#define SIMCLR_DYNAMIC_SHARED(T, name) ::simclr::emu::SharedSpan<T> name = ::simclr::emu::dynamic_shared<T>(#name)
// Appended to the parameter list of warp-level wrappers (mma.cuh): the call
// site, for error messages.
#define SIMCLR_EMU_SITE_PARAM , const ::std::source_location& emu_site_ = ::std::source_location::current()
#else
#define SIMCLR_SHARED(T, name, dims) __shared__ __align__(16) T name dims
#define SIMCLR_DYNAMIC_SHARED(T, name)                                     \
  extern __shared__ __align__(16) unsigned char simclr_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(simclr_dynamic_smem_)
#define SIMCLR_EMU_SITE_PARAM
#endif
