// kernels/cuda/selftest.cu - kernels that test the execution machinery: block
// barriers, warp shuffles (all kinds and widths), shared memory, atomics, and
// the tensor-core / async-copy wrappers of mma.cuh. Run emulated by
// tests/emu/test_emulator.cpp and on a device by tests/gpu/test_selftest_gpu.cpp,
// each against plain host loops. Declarations and shapes: kernels/cuda/selftest.h.
#include "kernels/cuda/selftest.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma.cuh"

namespace simclr::SIMCLR_KNS {

// ------------------------------------------------------------ kernels

// One block sums blockDim.x elements: a shared-memory tree with a barrier per
// level. Grid: ceil(n / blockDim.x). Shared: blockDim.x floats (dynamic).
__global__ void block_sum_kernel(float* partial, const float* x, int n) {
  SIMCLR_DYNAMIC_SHARED(float, buf);
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) partial[blockIdx.x] = buf[0];
}

// One warp sums its 32 values with a butterfly; every lane gets the sum.
__global__ void warp_sum_kernel(float* out, const float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (i < n) out[i] = v;
}

// One warp; lane l records every shuffle case (see selftest.h).
__global__ void shuffles_kernel(float* out, const float* x) {
  const int lane = threadIdx.x;
  const float v = x[lane];
  const int widths[5] = {32, 16, 8, 4, 2};
  float* o = out + lane * 21;
  for (int w = 0; w < 5; ++w) {
    o[w] = __shfl_sync(0xffffffffu, v, (lane * 7 + 3) & 31, widths[w]);
    o[5 + w] = __shfl_up_sync(0xffffffffu, v, 3, widths[w]);
    o[10 + w] = __shfl_down_sync(0xffffffffu, v, 3, widths[w]);
    o[15 + w] = __shfl_xor_sync(0xffffffffu, v, 5, widths[w]);
  }
  o[20] = v;
  if (lane < 16) o[20] = __shfl_down_sync(0x0000ffffu, v, 2, 16);
}

// Block (32, 8) moves a 32x32 tile; the +1 column avoids bank conflicts.
__global__ void transpose_kernel(float* out, const float* in, int M, int N) {
  SIMCLR_SHARED(float, tile, [32][33]);
  const int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
  for (int r = threadIdx.y; r < 32; r += blockDim.y) {
    const int gr = r0 + r, gc = c0 + threadIdx.x;
    if (gr < M && gc < N) tile[r][threadIdx.x] = in[gr * N + gc];
  }
  __syncthreads();
  for (int r = threadIdx.y; r < 32; r += blockDim.y) {
    const int oc = r0 + threadIdx.x, orow = c0 + r;  // out is [N][M]
    if (orow < N && oc < M) out[orow * M + oc] = tile[threadIdx.x][r];
  }
}

// Block-local histogram in shared memory (bins <= 256), then merged globally.
__global__ void histogram_kernel(int* hist, int* max_v, const int* v, int n, int bins) {
  SIMCLR_SHARED(int, local, [256]);
  for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  int my_max = -2147483647 - 1;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&local[v[i] % bins], 1);
    my_max = max(my_max, v[i]);
  }
  atomicMax(max_v, my_max);
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += blockDim.x) atomicAdd(&hist[b], local[b]);
}

__device__ __forceinline__ uint32_t pack2(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// One warp: fragments gathered from global memory with the mma.cuh formulas.
__global__ void mma_bf16_kernel(float* d, const uint16_t* a, const uint16_t* b, const float* c) {
  const int l = threadIdx.x;
  uint32_t fa[4], fb[2];
  float fc[4], fd[4];
  for (int r = 0; r < 4; ++r)
    fa[r] = pack2(a[mma_bf16_a_row(l, 2 * r) * 16 + mma_bf16_a_col(l, 2 * r)],
                  a[mma_bf16_a_row(l, 2 * r + 1) * 16 + mma_bf16_a_col(l, 2 * r + 1)]);
  for (int r = 0; r < 2; ++r)
    fb[r] = pack2(b[mma_bf16_b_k(l, 2 * r) * 8 + mma_bf16_b_n(l, 2 * r)],
                  b[mma_bf16_b_k(l, 2 * r + 1) * 8 + mma_bf16_b_n(l, 2 * r + 1)]);
  for (int i = 0; i < 4; ++i) fc[i] = c[mma_c_row(l, i) * 8 + mma_c_col(l, i)];
  mma_bf16_m16n8k16(fd, fa, fb, fc);
  for (int i = 0; i < 4; ++i) d[mma_c_row(l, i) * 8 + mma_c_col(l, i)] = fd[i];
}

// One warp: A [16][16] and B [16][8] staged in shared memory with padded rows
// (24 and 8 elements: 48- and 16-byte rows, 16-byte aligned), fragments via ldmatrix.
__global__ void mma_bf16_ldmatrix_kernel(float* d, uint32_t* regs, const uint16_t* a, const uint16_t* b,
                                         const float* c) {
  SIMCLR_SHARED(uint16_t, sa, [16][24]);
  SIMCLR_SHARED(uint16_t, sb, [16][8]);
  const int l = threadIdx.x;
  for (int i = l; i < 256; i += 32) sa[i / 16][i % 16] = a[i];
  for (int i = l; i < 128; i += 32) sb[i / 8][i % 8] = b[i];
  __syncwarp();
  uint32_t fa[4], fb[2], fa2[2];
  ldmatrix_x4(fa, &sa[l & 15][8 * (l >> 4)]);
  ldmatrix_x2_trans(fb, &sb[l & 15][0]);
  ldmatrix_x2(fa2, &sa[l & 15][0]);
  float fc[4], fd[4];
  for (int i = 0; i < 4; ++i) fc[i] = c[mma_c_row(l, i) * 8 + mma_c_col(l, i)];
  mma_bf16_m16n8k16(fd, fa, fb, fc);
  for (int i = 0; i < 4; ++i) d[mma_c_row(l, i) * 8 + mma_c_col(l, i)] = fd[i];
  for (int r = 0; r < 4; ++r) regs[l * 8 + r] = fa[r];
  for (int r = 0; r < 2; ++r) regs[l * 8 + 4 + r] = fb[r];
  for (int r = 0; r < 2; ++r) regs[l * 8 + 6 + r] = fa2[r];
}

__global__ void mma_tf32_kernel(float* d, const float* a, const float* b, const float* c) {
  const int l = threadIdx.x;
  uint32_t fa[4], fb[2];
  float fc[4], fd[4];
  for (int i = 0; i < 4; ++i) fa[i] = float_to_tf32(a[mma_tf32_a_row(l, i) * 8 + mma_tf32_a_col(l, i)]);
  for (int i = 0; i < 2; ++i) fb[i] = float_to_tf32(b[mma_tf32_b_k(l, i) * 8 + mma_tf32_b_n(l, i)]);
  for (int i = 0; i < 4; ++i) fc[i] = c[mma_c_row(l, i) * 8 + mma_c_col(l, i)];
  mma_tf32_m16n8k8(fd, fa, fb, fc);
  for (int i = 0; i < 4; ++i) d[mma_c_row(l, i) * 8 + mma_c_col(l, i)] = fd[i];
}

// 2 threads per 8-float row (16 bytes each), one block of 2*rows threads.
__global__ void cp_async_kernel(float* out, const float* in, int rows, int valid_rows) {
  SIMCLR_SHARED(float, stage, [64][8]);
  const int t = threadIdx.x, r = t / 2, half = t % 2;
  if (r < rows) {
    const int src_bytes = r < valid_rows ? 16 : 0;
    const float* src = in + (r < valid_rows ? r : 0) * 8 + 4 * half;
    cp_async_16_zfill(&stage[r][4 * half], src, src_bytes);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  if (r < rows)
    for (int k = 0; k < 4; ++k) out[r * 8 + 4 * half + k] = stage[r][4 * half + k];
}

// ------------------------------------------------------------ launchers

void selftest_block_sum(float* partial, const float* x, int n, int threads, cudaStream_t stream) {
  SIMCLR_CHECK(threads >= 32 && threads <= 1024 && (threads & (threads - 1)) == 0,
               "selftest_block_sum: threads must be a power of 2 in [32, 1024], got ", threads);
  const int blocks = static_cast<int>(ceil_div(n, threads));
  launch(block_sum_kernel, dim3(blocks), dim3(threads), threads * sizeof(float), stream, partial, x, n);
}

void selftest_warp_sum(float* out, const float* x, int n, cudaStream_t stream) {
  SIMCLR_CHECK(n % 32 == 0 && n > 0, "selftest_warp_sum: n must be a positive multiple of 32, got ", n);
  launch(warp_sum_kernel, dim3(static_cast<unsigned>(ceil_div(n, 128))), dim3(128), 0, stream, out, x, n);
}

void selftest_shuffles(float* out, const float* x, cudaStream_t stream) {
  launch(shuffles_kernel, dim3(1), dim3(32), 0, stream, out, x);
}

void selftest_transpose(float* out, const float* in, int M, int N, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(ceil_div(N, 32)), static_cast<unsigned>(ceil_div(M, 32)));
  launch(transpose_kernel, grid, dim3(32, 8), 0, stream, out, in, M, N);
}

void selftest_histogram(int* hist, int* max_v, const int* v, int n, int bins, cudaStream_t stream) {
  SIMCLR_CHECK(bins >= 1 && bins <= 256, "selftest_histogram: bins must be in [1, 256], got ", bins);
  launch(histogram_kernel, dim3(4), dim3(96), 0, stream, hist, max_v, v, n, bins);
}

void selftest_mma_bf16(float* d, const uint16_t* a, const uint16_t* b, const float* c, cudaStream_t stream) {
  launch(mma_bf16_kernel, dim3(1), dim3(32), 0, stream, d, a, b, c);
}

void selftest_mma_bf16_ldmatrix(float* d, uint32_t* regs, const uint16_t* a, const uint16_t* b, const float* c,
                                cudaStream_t stream) {
  launch(mma_bf16_ldmatrix_kernel, dim3(1), dim3(32), 0, stream, d, regs, a, b, c);
}

void selftest_mma_tf32(float* d, const float* a, const float* b, const float* c, cudaStream_t stream) {
  launch(mma_tf32_kernel, dim3(1), dim3(32), 0, stream, d, a, b, c);
}

void selftest_cp_async(float* out, const float* in, int rows, int valid_rows, cudaStream_t stream) {
  SIMCLR_CHECK(rows >= 1 && rows <= 64 && valid_rows >= 0 && valid_rows <= rows,
               "selftest_cp_async: need 1 <= rows <= 64 and 0 <= valid_rows <= rows");
  launch(cp_async_kernel, dim3(1), dim3(static_cast<unsigned>(2 * rows)), 0, stream, out, in, rows, valid_rows);
}

}  // namespace simclr::SIMCLR_KNS
