// kernels/cuda/selftest.h - small kernels that test the execution machinery
// itself (the emulator, and the mma/ldmatrix/cp.async wrappers on a real GPU):
// tests/emu/test_emulator.cpp runs them emulated, tests/gpu/test_selftest_gpu.cpp
// on a device. Not used by the engine. Pointers are device pointers (host
// memory under the emulator). Shapes: n elements, M x N matrices row-major.
#pragma once
#include <cstdint>

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

#define SIMCLR_SELFTEST_LAUNCHERS                                                                  \
  /* partial[ceil(n / threads)] = per-block sums of x[n] (shared-memory tree, dynamic smem); */    \
  /* threads: a power of 2 in [32, 1024] */                                                        \
  void selftest_block_sum(float* partial, const float* x, int n, int threads, cudaStream_t stream); \
  /* out[n] = warp sum of x over each full warp (xor butterfly; n a multiple of 32) */              \
  void selftest_warp_sum(float* out, const float* x, int n, cudaStream_t stream);                   \
  /* out[32 * kShuffleCases] for one warp: every shuffle kind at widths 32/16/8/4/2 and */          \
  /* a lower-16-lane partial mask; case table in selftest.cu */                                     \
  void selftest_shuffles(float* out, const float* x, cudaStream_t stream);                          \
  /* out[N][M] = in[M][N] through a 32x33 shared tile */                                            \
  void selftest_transpose(float* out, const float* in, int M, int N, cudaStream_t stream);          \
  /* hist[bins] += counts of v[n] % bins (shared atomics, then global), max_v[0] = max(v) */        \
  void selftest_histogram(int* hist, int* max_v, const int* v, int n, int bins, cudaStream_t stream); \
  /* one warp: d[16][8] = a[16][16] b[16][8] + c[16][8] (bf16 inputs as raw bits, fp32 c, d); */     \
  /* fragments loaded with the layout formulas of mma.cuh */                                        \
  void selftest_mma_bf16(float* d, const uint16_t* a, const uint16_t* b, const float* c, cudaStream_t stream); \
  /* one warp: the same through ldmatrix_x4 (A) and ldmatrix_x2_trans (B) from shared memory; */    \
  /* regs[32][8] = raw registers (x4 of A, x2_trans of B, x2 of A rows 0..15 cols 0..7) */          \
  void selftest_mma_bf16_ldmatrix(float* d, uint32_t* regs, const uint16_t* a, const uint16_t* b,  \
                                  const float* c, cudaStream_t stream);                             \
  /* one warp: d[16][8] = tf32(a[16][8]) tf32(b[8][8]) + c[16][8] */                                \
  void selftest_mma_tf32(float* d, const float* a, const float* b, const float* c, cudaStream_t stream); \
  /* out[rows][8] = in[rows][8] staged through shared memory with cp.async; rows of in */            \
  /* beyond valid_rows are zero-filled; rows <= 64 */                                                \
  void selftest_cp_async(float* out, const float* in, int rows, int valid_rows, cudaStream_t stream);

namespace simclr::gpu { SIMCLR_SELFTEST_LAUNCHERS }
namespace simclr::emu { SIMCLR_SELFTEST_LAUNCHERS }

namespace simclr::selftest {
inline constexpr int kShuffleCases = 21;
}
