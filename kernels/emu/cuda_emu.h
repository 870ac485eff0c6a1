// kernels/emu/cuda_emu.h - CPU execution of our CUDA kernels (the emulator).
//
// kernels/cuda/*.cu are compiled a second time as plain C++ with SIMCLR_EMU
// defined; kernels/cuda/common.cuh then includes this header instead of
// <cuda_runtime.h>. It supplies what our kernels use:
//   - the CUDA keywords (__global__, __device__, __shared__ = one static
//     instance per block, since blocks run one after another),
//   - threadIdx / blockIdx / blockDim / gridDim, warpSize,
//   - __syncthreads (+ _count/_and/_or), the warp collectives with exact PTX
//     shfl.sync semantics (mask, width, clamping), __ballot/__any/__all,
//     __syncwarp, __reduce_*_sync,
//   - atomics, math intrinsics, bf16/half (the toolkit's own cuda_bf16.h and
//     cuda_fp16.h in host mode) and vector types (the toolkit's),
//   - the runtime API subset our launchers call (cudaMalloc..., streams,
//     events, attributes), acting on host memory, in namespace simclr::emu.
//
// Execution: one launch runs its blocks one after another. The threads of a
// block are fibers (Boost.Context fcontext, one small stack each) scheduled
// round-robin in a deterministic order (EMU_ORDER=forward|reverse|seeded[:N]);
// a thread runs until it reaches a barrier or a warp collective, or exits.
// A barrier releases when every thread of the block has arrived; a warp
// collective when every lane of its mask has. Kernels launched with
// launch_nobarrier run as a plain loop over threads (no fibers, faster); a
// barrier or collective there is an error.
//
// Checks, each a simclr::Error naming kernel, block and thread (and the
// source line where it applies): a barrier reached by part of a block, a warp
// collective with a missing/exited lane or mismatched masks, a deadlock,
// out-of-bounds shared memory (SIMCLR_SHARED arrays and the dynamic shared
// view index-checked; guard bytes around dynamic shared memory checked after
// every block), launch configurations over the sm_90 limits, misaligned
// ldmatrix / cp.async addresses. Shared memory is filled with 0xFF bytes
// (NaN for floats) at the start of every block, so reading it before writing
// shows up.
//
// What it cannot see: races between blocks (they never overlap here), the
// memory model, the timing, and the tensor-core numerics (mma.cuh computes
// the products in fp32 with its own summation order). See docs/emulator.md.
#pragma once
#ifndef SIMCLR_EMU
#error "kernels/emu/cuda_emu.h belongs to the emulated build (SIMCLR_EMU)"
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// The toolkit's types and bf16/half in host mode. device_launch_parameters.h
// and the runtime API are deliberately kept out (their threadIdx and API
// declarations would clash with ours): vector_functions.h includes
// cuda_runtime_api.h, so its include guard is set first. The runtime's types
// (driver_types.h) are the toolkit's, so cudaStream_t etc. agree with the
// real build.
#if defined(__CUDA_RUNTIME_API_H__) && !defined(SIMCLR_EMU_RUNTIME_API_BLOCKED)
#error "kernels/emu/cuda_emu.h must not be combined with <cuda_runtime.h> / <cuda_runtime_api.h> in one file"
#endif
#define __CUDA_RUNTIME_API_H__
#define SIMCLR_EMU_RUNTIME_API_BLOCKED 1
#include <vector_types.h>
#include <vector_functions.h>
#include <driver_types.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "engine/check.h"

// host_defines.h defined these as attributes g++ ignores; take them over.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __managed__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ noinline  // (libstdc++ writes __attribute__((__noinline__)); kernels: do not use it)
#define __launch_bounds__(...)
#define __grid_constant__

namespace simclr::emu {

// ------------------------------------------------------------ configuration
enum class Order { forward, reverse, seeded };
// Thread order inside a block. Default: from EMU_ORDER (forward when unset);
// "seeded" or "seeded:<n>" permutes threads with a fixed seed per block.
void set_order(Order order, uint64_t seed = 0);
void reset_order_from_env();
Order current_order();
const char* order_name(Order order);

// Hardware limits enforced at launch (sm_90).
inline constexpr int kMaxThreadsPerBlock = 1024;
inline constexpr int kMaxBlockDimZ = 64;
inline constexpr size_t kDefaultSharedBytes = 48 * 1024;      // without the opt-in attribute
inline constexpr size_t kMaxSharedBytesOptin = 227 * 1024;    // cudaDevAttrMaxSharedMemoryPerBlockOptin
inline constexpr int kNumSMs = 132;
inline constexpr int warpSize = 32;

struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0, collectives = 0, barriers = 0;
};
Stats stats();

// ------------------------------------------------------------ internals used by the macros below
namespace detail {

struct Ids {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
  int lane = 0, warp = 0;
};
// Plain globals, not thread_local: one emulated launch runs at a time in a
// process (run_launch holds a lock), and device code reads these constantly.
// (Also: GCC's UBSan null check on an extern thread_local misfires after the
// linker relaxes the TLS access, a toolchain bug.)
extern const Ids* t_ids;
extern uint64_t t_block_epoch;  // changes at every block start

struct LaunchSite {
  const char* text;  // the launch's arguments as written: "kernel, grid, ..."
  const char* file;
  int line;
};
using Thunk = void (*)(void* ctx);
void run_launch(const LaunchSite& site, const void* kernel_id, dim3 grid, dim3 block, size_t shared_bytes,
                bool barrier_free, Thunk thunk, void* ctx);

// A failure detected in device code: names kernel, block, thread (and file:line
// when given); never returns. In a fiber the message is recorded and the
// thread abandoned (run_launch then throws simclr::Error); in a plain-loop
// launch it throws at once.
void record_device_error(const char* file, int line, const std::string& what);
[[noreturn]] void abandon_thread();
template <class... A>
[[noreturn]] void device_fail(const char* file, int line, const A&... parts) {
  record_device_error(file, line, ::simclr::detail::cat(parts...));  // the temporary dies here
  abandon_thread();
}

void syncthreads(const char* file, int line);
int syncthreads_reduce(int op, int pred, const char* file, int line);  // op 0 count, 1 and, 2 or

// The warp-collective primitive. Every lane of `mask` calls warp_arrive with
// `bytes` (<= 64) of input; it returns once all of them have arrived. The
// lane that arrives last first runs `fn` (if given) once for the warp:
// fn(in, out, mask) reads in[l * 64 ...] and writes out[l * 64 ...] for the
// lanes l of the mask. Every lane then reads the slots it needs and calls
// warp_done with the handle (slots stay valid until then).
struct WarpSlots {
  const unsigned char* in;
  const unsigned char* out;
  void* handle;
};
inline constexpr int kSlotBytes = 64;
using WarpFn = void (*)(const unsigned char* in, unsigned char* out, unsigned mask);
WarpSlots warp_arrive(const char* kind, unsigned mask, const void* mine, size_t bytes, WarpFn fn, const char* file,
                      int line);
void warp_done(void* handle);

// Convenience: the 32 lanes' inputs copied to `all` (lanes outside the mask: 0xFF bytes).
inline void warp_collective(const char* kind, unsigned mask, const void* mine, size_t bytes, void* all,
                            const char* file, int line) {
  WarpSlots s = warp_arrive(kind, mask, mine, bytes, nullptr, file, line);
  if (all) {
    unsigned char* o = static_cast<unsigned char*>(all);
    for (int l = 0; l < 32; ++l) {
      if (mask >> l & 1u) std::memcpy(o + l * bytes, s.in + l * kSlotBytes, bytes);
      else std::memset(o + l * bytes, 0xFF, bytes);
    }
  }
  warp_done(s.handle);
}
inline int lane_id() { return t_ids->lane; }
unsigned live_lanes_mask();

// Dynamic shared memory of the running block.
unsigned char* dynamic_shared_base(size_t* bytes);
// Registration of SIMCLR_SHARED arrays (static shared-memory accounting).
void register_shared_array(const char* name, size_t bytes, const char* file, int line);
[[noreturn]] void shared_oob(const char* name, const char* file, int line, long long index, size_t extent);

// cp.async emulation: copies are deferred to the matching wait.
void cp_async(void* dst, const void* src, int src_bytes, int total_bytes, const char* file, int line);
void cp_async_commit();
void cp_async_wait(int keep_pending);

}  // namespace detail

// ------------------------------------------------------------ shared memory views
// A bounds-checked pointer into dynamic shared memory (SIMCLR_DYNAMIC_SHARED).
// Index with [], move with +, take raw addresses with &p[i] or the implicit
// conversion to T*.
template <class T>
struct SharedSpan {
  T* base = nullptr;
  size_t count = 0;  // elements from base to the end of the buffer
  const char* name = "dynamic shared memory";

  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  T& operator[](I i) const {
    if (i < 0 || static_cast<unsigned long long>(i) >= count)
      detail::shared_oob(name, nullptr, 0, static_cast<long long>(i), count);
    return base[i];
  }
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  SharedSpan operator+(I k) const {
    if (k < 0 || static_cast<unsigned long long>(k) > count)
      detail::shared_oob(name, nullptr, 0, static_cast<long long>(k), count);
    return {base + k, count - static_cast<size_t>(k), name};
  }
  T& operator*() const { return (*this)[0]; }
  operator T*() const { return base; }
  T* get() const { return base; }
};

template <class T>
SharedSpan<T> dynamic_shared(const char* name) {
  size_t bytes = 0;
  unsigned char* p = detail::dynamic_shared_base(&bytes);
  return {reinterpret_cast<T*>(p), bytes / sizeof(T), name};
}

// One row (or sub-array) of a SIMCLR_SHARED array, still bounds-checked.
template <class A>
struct SharedRef {
  A& ref;
  const char* name;
  const char* file;
  int line;
  using Elem = std::remove_extent_t<A>;
  static constexpr size_t N = std::extent_v<A>;

  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  decltype(auto) operator[](I i) const {
    if (i < 0 || static_cast<unsigned long long>(i) >= N)
      detail::shared_oob(name, file, line, static_cast<long long>(i), N);
    if constexpr (std::is_array_v<Elem>)
      return SharedRef<Elem>{ref[i], name, file, line};
    else
      return (ref[i]);
  }
  operator Elem*() const { return ref; }
};

// A static __shared__ array with bounds checks: SIMCLR_SHARED(float, tile, [32][33]).
// One instance per kernel (static storage: blocks run one after another);
// filled with 0xFF bytes the first time it is touched in each block.
template <class A>
struct SharedArray {
  static_assert(std::is_array_v<A>, "SIMCLR_SHARED needs array dimensions, e.g. [32][33]");
  using Elem = std::remove_extent_t<A>;
  static constexpr size_t N = std::extent_v<A>;
  alignas(16) A data;
  const char* name;
  const char* file;
  int line;
  uint64_t epoch = 0;

  SharedArray(const char* n, const char* f, int l) : name(n), file(f), line(l) {
    detail::register_shared_array(n, sizeof(A), f, l);
  }
  void touch() {
    if (epoch != detail::t_block_epoch) {
      std::memset(static_cast<void*>(&data), 0xFF, sizeof(A));
      epoch = detail::t_block_epoch;
    }
  }
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  decltype(auto) operator[](I i) {
    touch();
    if (i < 0 || static_cast<unsigned long long>(i) >= N)
      detail::shared_oob(name, file, line, static_cast<long long>(i), N);
    if constexpr (std::is_array_v<Elem>)
      return SharedRef<Elem>{data[i], name, file, line};
    else
      return (data[i]);
  }
  operator Elem*() {
    touch();
    return data;
  }
};

// ------------------------------------------------------------ warp collectives
namespace detail {
enum ShflMode { kShflIdx = 0, kShflUp = 1, kShflDown = 2, kShflBfly = 3 };
inline const char* shfl_name(int mode) {
  static const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
  return names[mode];
}

// PTX shfl.sync: c = ((32 - width) << 8) | clamp, clamp 0 for .up and 31 otherwise.
//   segmask = c[12:8]; maxLane = (lane & segmask) | (clamp & ~segmask); minLane = lane & segmask
//   up: j = lane - b, valid j >= maxLane    down: j = lane + b, valid j <= maxLane
//   bfly: j = lane ^ b, valid j <= maxLane  idx: j = minLane | (b & ~segmask), valid j <= maxLane
//   invalid j -> own lane. A source lane outside the mask gives an undefined
//   value: here 0xFF bytes (NaN / -1), so using it shows.
template <class T>
T shfl(int mode, const char* file, int line, unsigned mask, T v, int b, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a type larger than 8 bytes");
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    device_fail(file, line, shfl_name(mode), ": width ", width, " is not a power of 2 in [1, 32]");
  WarpSlots slots = warp_arrive(shfl_name(mode), mask, &v, sizeof(T), nullptr, file, line);
  const int lane = lane_id();
  const int segmask = (32 - width) & 31;
  const int clamp = mode == kShflUp ? 0 : 31;
  const int bval = b & 31;
  const int max_lane = (lane & segmask) | (clamp & ~segmask);
  const int min_lane = lane & segmask;
  int j = lane;
  bool valid = true;
  switch (mode) {
    case kShflUp: j = lane - bval; valid = j >= max_lane; break;
    case kShflDown: j = lane + bval; valid = j <= max_lane; break;
    case kShflBfly: j = lane ^ bval; valid = j <= max_lane; break;
    default: j = min_lane | (bval & ~segmask); valid = j <= max_lane; break;
  }
  if (!valid) j = lane;
  T r;
  if (mask >> j & 1u) std::memcpy(&r, slots.in + j * kSlotBytes, sizeof(T));
  else std::memset(&r, 0xFF, sizeof(T));
  warp_done(slots.handle);
  return r;
}

inline unsigned ballot(const char* kind, const char* file, int line, unsigned mask, int pred) {
  int all[32];
  int mine = pred != 0;
  warp_collective(kind, mask, &mine, sizeof mine, all, file, line);
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && all[l]) bits |= 1u << l;
  return bits;
}

template <class T, class Op>
T reduce_sync(const char* kind, const char* file, int line, unsigned mask, T v, Op op) {
  T all[32];
  warp_collective(kind, mask, &v, sizeof v, all, file, line);
  bool first = true;
  T r{};
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) {
      r = first ? all[l] : op(r, all[l]);
      first = false;
    }
  return r;
}
}  // namespace detail

// ------------------------------------------------------------ atomics (one OS thread runs a launch: plain RMW)
inline int atomicAdd(int* p, int v) { int o = *p; *p = o + v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { auto o = *p; *p = o + v; return o; }
inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { double o = *p; *p = o + v; return o; }
inline int atomicSub(int* p, int v) { int o = *p; *p = o - v; return o; }
inline unsigned atomicSub(unsigned* p, unsigned v) { unsigned o = *p; *p = o - v; return o; }
inline int atomicMax(int* p, int v) { int o = *p; *p = std::max(o, v); return o; }
inline unsigned atomicMax(unsigned* p, unsigned v) { unsigned o = *p; *p = std::max(o, v); return o; }
inline long long atomicMax(long long* p, long long v) { auto o = *p; *p = std::max(o, v); return o; }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) { auto o = *p; *p = std::max(o, v); return o; }
inline int atomicMin(int* p, int v) { int o = *p; *p = std::min(o, v); return o; }
inline unsigned atomicMin(unsigned* p, unsigned v) { unsigned o = *p; *p = std::min(o, v); return o; }
inline long long atomicMin(long long* p, long long v) { auto o = *p; *p = std::min(o, v); return o; }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { auto o = *p; *p = std::min(o, v); return o; }
inline int atomicCAS(int* p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }
inline unsigned atomicCAS(unsigned* p, unsigned cmp, unsigned v) { unsigned o = *p; if (o == cmp) *p = v; return o; }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long cmp, unsigned long long v) {
  auto o = *p; if (o == cmp) *p = v; return o;
}
inline int atomicExch(int* p, int v) { int o = *p; *p = v; return o; }
inline unsigned atomicExch(unsigned* p, unsigned v) { unsigned o = *p; *p = v; return o; }
inline float atomicExch(float* p, float v) { float o = *p; *p = v; return o; }
inline int atomicAnd(int* p, int v) { int o = *p; *p = o & v; return o; }
inline unsigned atomicAnd(unsigned* p, unsigned v) { unsigned o = *p; *p = o & v; return o; }
inline int atomicOr(int* p, int v) { int o = *p; *p = o | v; return o; }
inline unsigned atomicOr(unsigned* p, unsigned v) { unsigned o = *p; *p = o | v; return o; }
inline int atomicXor(int* p, int v) { int o = *p; *p = o ^ v; return o; }
inline unsigned atomicXor(unsigned* p, unsigned v) { unsigned o = *p; *p = o ^ v; return o; }
inline void __threadfence() {}
inline void __threadfence_block() {}

// ------------------------------------------------------------ math and bit intrinsics
// The fast-math intrinsics are computed exactly here (the hardware's are
// approximate: a tolerance must cover the difference).
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : std::min(1.0f, std::max(0.0f, x)); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(std::ceil(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(std::nearbyint(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __ll2float_rn(long long x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { int r; std::memcpy(&r, &x, 4); return r; }
inline unsigned __float_as_uint(float x) { unsigned r; std::memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; std::memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned x) { float r; std::memcpy(&r, &x, 4); return r; }
inline long long __double_as_longlong(double x) { long long r; std::memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; std::memcpy(&r, &x, 8); return r; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((uint64_t(a) * b) >> 32); }
inline int __mul24(int a, int b) { return a * b; }
inline long long clock64() { return static_cast<long long>(__builtin_ia32_rdtsc()); }
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
inline size_t __cvta_generic_to_shared(const void* p) { return reinterpret_cast<size_t>(p); }

// CUDA's device min/max accept mixed int/float arguments like these.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// bf16 / half math the toolkit headers only provide for device code.
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16(std::fma(__bfloat162float(a), __bfloat162float(b), __bfloat162float(c)));
}
inline __nv_bfloat16 hexp(__nv_bfloat16 x) { return __float2bfloat16(std::exp(__bfloat162float(x))); }
inline __nv_bfloat16 hsqrt(__nv_bfloat16 x) { return __float2bfloat16(std::sqrt(__bfloat162float(x))); }
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half(std::fma(__half2float(a), __half2float(b), __half2float(c)));
}
inline __half hexp(__half x) { return __float2half(std::exp(__half2float(x))); }
inline __half hsqrt(__half x) { return __float2half(std::sqrt(__half2float(x))); }

// ------------------------------------------------------------ runtime API subset (host memory)
// Kernel code and launchers in namespace simclr::emu find these unqualified.
// Every call is synchronous; streams and events exist so the launchers'
// code is the same as in the real build.
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T> cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t stream);
template <class T> cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t stream) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, stream);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaFuncSetAttribute_(const void* func, cudaFuncAttribute attr, int value);
template <class F> cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute_(reinterpret_cast<const void*>(func), attr, value);
}
// What cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n) granted.
size_t max_dynamic_shared_bytes(const void* kernel);

template <class T> cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t bytes, size_t offset = 0,
                                                  cudaMemcpyKind = cudaMemcpyHostToDevice) {
  if (offset + bytes > sizeof(T)) return cudaErrorInvalidValue;
  std::memcpy(reinterpret_cast<unsigned char*>(&symbol) + offset, src, bytes);
  return cudaSuccess;
}

namespace detail {
[[noreturn]] void cuda_fail(const char* call, cudaError_t e, const char* file, int line);
}

// ------------------------------------------------------------ the launch
}  // namespace simclr::emu
// Capture of the emulated device (engine/async.h): while it is on, a launch is
// recorded (with a copy of its arguments) instead of run.
namespace simclr::detail {
bool emu_capturing();
bool emu_capture_record(std::function<void()> op);
}  // namespace simclr::detail
namespace simclr::emu {
namespace detail {
template <class... P, class... A>
void launch_at(const char* text, const char* file, int line, bool barrier_free, void (*kernel)(P...), dim3 grid,
               dim3 block, size_t shared_bytes, cudaStream_t /*stream*/, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: wrong number of kernel arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  struct Ctx {
    void (*kernel)(P...);
    Params* params;
  };
  // Each thread gets its own copy of the parameters, as on the GPU.
  Thunk thunk = [](void* c) {
    Ctx* x = static_cast<Ctx*>(c);
    std::apply(x->kernel, *x->params);
  };
  if (::simclr::detail::emu_capturing()) {
    // Recorded with its arguments by value, as a graph's kernel node holds them.
    auto held = std::make_shared<Params>(std::forward<A>(args)...);
    const LaunchSite site{text, file, line};
    ::simclr::detail::emu_capture_record([=] {
      Ctx ctx{kernel, held.get()};
      run_launch(site, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, barrier_free, thunk, &ctx);
    });
    return;
  }
  Params params{std::forward<A>(args)...};
  Ctx ctx{kernel, &params};
  run_launch(LaunchSite{text, file, line}, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes,
             barrier_free, thunk, &ctx);
}
}  // namespace detail

}  // namespace simclr::emu

// ------------------------------------------------------------ device-side names
#define threadIdx (::simclr::emu::detail::t_ids->thread_idx)
#define blockIdx (::simclr::emu::detail::t_ids->block_idx)
#define blockDim (::simclr::emu::detail::t_ids->block_dim)
#define gridDim (::simclr::emu::detail::t_ids->grid_dim)

#define __syncthreads() ::simclr::emu::detail::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::simclr::emu::detail::syncthreads_reduce(0, (p), __FILE__, __LINE__)
#define __syncthreads_and(p) ::simclr::emu::detail::syncthreads_reduce(1, (p), __FILE__, __LINE__)
#define __syncthreads_or(p) ::simclr::emu::detail::syncthreads_reduce(2, (p), __FILE__, __LINE__)

#define __shfl_sync(...) ::simclr::emu::detail::shfl(::simclr::emu::detail::kShflIdx, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::simclr::emu::detail::shfl(::simclr::emu::detail::kShflUp, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) \
  ::simclr::emu::detail::shfl(::simclr::emu::detail::kShflDown, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::simclr::emu::detail::shfl(::simclr::emu::detail::kShflBfly, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, p) ::simclr::emu::detail::ballot("__ballot_sync", __FILE__, __LINE__, (mask), (p))
#define __any_sync(mask, p) (::simclr::emu::detail::ballot("__any_sync", __FILE__, __LINE__, (mask), (p)) != 0u)
#define __all_sync(mask, p) \
  (::simclr::emu::detail::ballot("__all_sync", __FILE__, __LINE__, (mask), (p)) == (mask))
#define __syncwarp(...) ::simclr::emu::detail::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __activemask() ::simclr::emu::detail::live_lanes_mask()
#define __reduce_add_sync(mask, v) \
  ::simclr::emu::detail::reduce_sync("__reduce_add_sync", __FILE__, __LINE__, (mask), (v), [](auto a, auto b) { return a + b; })
#define __reduce_min_sync(mask, v) \
  ::simclr::emu::detail::reduce_sync("__reduce_min_sync", __FILE__, __LINE__, (mask), (v), [](auto a, auto b) { return a < b ? a : b; })
#define __reduce_max_sync(mask, v) \
  ::simclr::emu::detail::reduce_sync("__reduce_max_sync", __FILE__, __LINE__, (mask), (v), [](auto a, auto b) { return a > b ? a : b; })

namespace simclr::emu::detail {
inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_collective("__syncwarp", mask, nullptr, 0, nullptr, file, line);
}
}  // namespace simclr::emu::detail

// The check macro for CUDA calls in kernels/cuda/*.cu (same name and meaning
// as engine/cuda_check.h in the real build).
#ifndef CUDA_CHECK
#define CUDA_CHECK(call)                                                           \
  do {                                                                             \
    cudaError_t e_ = (call);                                                       \
    if (e_ != cudaSuccess) ::simclr::emu::detail::cuda_fail(#call, e_, __FILE__, __LINE__); \
  } while (0)
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif
