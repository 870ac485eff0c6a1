// engine/device.h - memory and device services behind one small interface.
//
// CPU memory comes from an aligned allocator (64-byte alignment, for SIMD and
// OpenBLAS). CUDA memory comes from a stream-ordered caching allocator
// (cudaMallocAsync on the device's default memory pool, release threshold
// raised so freed blocks are kept): because the tape replays the same ops in
// the same order every step, the allocation sequence is the same every step,
// which is what CUDA-graph capture of a whole step needs.
//
// In a build without CUDA every cuda_* function below exists and throws a
// clear "built without CUDA" error, except cuda_available() which is false.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace simclr {

std::shared_ptr<Storage> allocate_storage(size_t bytes, Device device);
void free_storage(Storage& s);

// memcpy across devices (synchronous with respect to the host).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void fill_bytes_zero(void* dst, Device dev, size_t bytes);

// CPU allocator statistics (for tests and leak checks).
struct AllocStats {
  size_t live_bytes = 0, peak_bytes = 0, allocations = 0;
};
AllocStats cpu_alloc_stats();

// ---- CPU allocator debug mode (tests): while on, every new CPU block is
// filled with 0xFF bytes (a NaN in f32, f64, bf16 and f16, so an output
// element an op forgets to write reads as NaN) and framed by guard bytes:
// 64 before the block and from its last byte to the end of its 64-byte
// rounding (at least 64) after it, so a write one element past the end breaks
// the guard. Guards are verified when a block is freed (a broken one is
// recorded, since a destructor cannot throw) and by cpu_alloc_check(). Blocks
// allocated while the mode is off are plain and stay plain. Off by default:
// then allocation and free cost one relaxed atomic load more.
void set_cpu_alloc_debug(bool on);
bool cpu_alloc_debug();
// Verifies the guards of every live debug block and reports the blocks freed
// with a broken guard since the last call: throws simclr::Error naming each
// (size, before/after, offset of the first bad byte), else returns the number
// of live debug blocks checked.
size_t cpu_alloc_check();
// Turns the debug mode on for a scope (restores the previous setting).
class CpuAllocDebug {
 public:
  CpuAllocDebug() : prev_(cpu_alloc_debug()) { set_cpu_alloc_debug(true); }
  ~CpuAllocDebug() { set_cpu_alloc_debug(prev_); }
  CpuAllocDebug(const CpuAllocDebug&) = delete;
  CpuAllocDebug& operator=(const CpuAllocDebug&) = delete;

 private:
  bool prev_;
};

// ---- CUDA services
bool cuda_available();          // a usable device exists at run time
int cuda_device_count();
std::string cuda_device_name(int device);
void cuda_synchronize(int device);
// The stream every engine op on this device is issued on (opaque here; a
// cudaStream_t in CUDA files).
void* cuda_current_stream(int device);
// Peak bytes held by the caching allocator since the last reset.
size_t cuda_peak_bytes(int device);
void cuda_reset_peak(int device);

// ---- CUDA library settings: how the CUDA backend's library paths compute
// (kernels/cuda/conv2d_cudnn.cu, kernels/cuda/linear_cublaslt.cu). Process-wide,
// read at every call; the plan caches key on them, so a change takes effect at
// the next call. In a build without CUDA they are stored and read back, and
// have no effect.
//   CudaMath::fp32 (default): float operands are multiplied in full fp32 (no
//     TF32 tensor-core engines, no FFT / Winograd convolutions);
//     CudaMath::tf32: float convolutions and GEMMs may round their inputs to
//     TF32 (10-bit mantissa) and use any engine. bf16 always computes in fp32.
//   deterministic (default off): only engines / algorithms without
//     non-deterministic reductions, so the same inputs give bit-identical
//     outputs every call.
//   ConvImpl::cudnn (default): convolutions go through cuDNN where this build
//     has the cuDNN frontend; ConvImpl::ours: the project's own CUDA kernels.
enum class CudaMath { fp32, tf32 };
void set_cuda_math(CudaMath math);
CudaMath cuda_math();
void set_cuda_deterministic(bool on);
bool cuda_deterministic();
enum class ConvImpl { cudnn, ours };
void set_cuda_conv_impl(ConvImpl impl);
ConvImpl cuda_conv_impl();

// Why no GPU is used, for skip messages ("built without CUDA",
// "no CUDA device: <driver message>").
std::string cuda_unavailable_reason();

// The run-time BLAS: library name and thread count, e.g. "OpenBLAS 0.3.21
// (OpenMP, 2 threads)". Fails loudly if the reference BLAS is what got loaded.
std::string blas_info();

}  // namespace simclr
