// kernels/cuda/gemm_tile.cuh - the tiled fp32-accumulating GEMM shared by our
// linear (kernels/cuda/gemm.cu) and convolution (kernels/cuda/conv2d.cu)
// kernels. Include after kernels/cuda/common.cuh; compiled in both builds.
//
//   C[M,N] (=, += or + bias) = Σ_k A(m,k) · B(n,k)
//
// A and B are "loaders": small structs with
//     static constexpr bool k_contiguous;          // memory order of the operand
//     __device__ float operator()(int r, int k);   // element (row r, depth k), 0 where it does not exist
// so a convolution's im2col matrix is never formed (implicit GEMM): the loader
// computes the address of x it reads (or 0 for padding).
//
// Tiling: one block of 256 threads per 64x64 tile of C, K loop in steps of 16
// through two shared tiles [16][64+4] (fp32: bf16 operands are converted on
// load), 4x4 outputs per thread (rows ty + 16i, columns tx + 16j, so a warp's
// stores are 16 consecutive columns). Loads follow the operand's memory order:
// a k-contiguous operand is read as 4 consecutive k of one row per thread, an
// r-contiguous one as 4 consecutive rows of one k.
//
// Split-K: the depth range is cut into `splits` fixed chunks (multiples of
// 16), blockIdx.z = chunk; each chunk's fp32 sums go to partial[z][M][N] and
// splitk_sum_kernel adds them to C in chunk order. Every output is a fixed
// sequence of fp32 operations, so results are deterministic (no atomics) and
// depend only on the shape and `splits`. One rounding to T at the store.
#pragma once
#include <algorithm>
#include <cstdint>

// Full unrolling keeps acc[4][4] in registers (nvcc); the emulated build's
// host compiler does not know the pragma.
#ifdef SIMCLR_EMU
#define GEMM_TILE_UNROLL
#else
#define GEMM_TILE_UNROLL _Pragma("unroll")
#endif

namespace simclr::SIMCLR_KNS::tile {

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;
constexpr int kMaxSplits = 32;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Row-major operand, k fastest: element (r, k) = p[r·ld + k].
template <class T>
struct RowK {
  static constexpr bool k_contiguous = true;
  const T* p;
  int64_t ld;
  __device__ __forceinline__ float operator()(int r, int k) const { return to_f(p[r * ld + k]); }
};
// Row-major operand, r fastest: element (r, k) = p[k·ld + r].
template <class T>
struct KRow {
  static constexpr bool k_contiguous = false;
  const T* p;
  int64_t ld;
  __device__ __forceinline__ float operator()(int r, int k) const { return to_f(p[k * ld + r]); }
};

// What the kernel writes.
template <class T>
struct Out {
  T* c = nullptr;          // C[M, ldc] row-major (unused when partial is set)
  int64_t ldc = 0;
  const T* bias = nullptr;  // [N], added to every row, or null
  int accumulate = 0;       // C += instead of C =
  float* partial = nullptr; // split-K: [splits][M][N] fp32 sums of each chunk
};

// One 16-deep slice of an operand into shared memory s[k][r] (0 outside
// rows [r0, R) and depths [k0, ke)).
template <bool KC, class L, class S>
__device__ __forceinline__ void load_slice(const L& f, S& s, int r0, int R, int k0, int ke, int tid) {
  if constexpr (KC) {
    const int r = tid >> 2, kq = (tid & 3) * 4, row = r0 + r;
GEMM_TILE_UNROLL
    for (int q = 0; q < 4; ++q) {
      const int k = k0 + kq + q;
      s[kq + q][r] = (row < R && k < ke) ? f(row, k) : 0.f;
    }
  } else {
    const int kq = tid >> 4, rq = (tid & 15) * 4, k = k0 + kq;
GEMM_TILE_UNROLL
    for (int q = 0; q < 4; ++q) {
      const int row = r0 + rq + q;
      s[kq][rq + q] = (row < R && k < ke) ? f(row, k) : 0.f;
    }
  }
}

template <class T, class LA, class LB>
__global__ void __launch_bounds__(kThreads)
    gemm_tile_kernel(LA a, LB b, Out<T> out, int M, int N, int K, int k_chunk) {
  SIMCLR_SHARED(float, As, [kBK][kBM + 4]);
  SIMCLR_SHARED(float, Bs, [kBK][kBN + 4]);
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid & 15, ty = tid >> 4;
  const int m0 = static_cast<int>(blockIdx.x) * kBM, n0 = static_cast<int>(blockIdx.y) * kBN;
  const int kb = static_cast<int>(blockIdx.z) * k_chunk;
  const int ke = K < kb + k_chunk ? K : kb + k_chunk;
  float acc[4][4];
GEMM_TILE_UNROLL
  for (int i = 0; i < 4; ++i)
GEMM_TILE_UNROLL
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
  for (int k0 = kb; k0 < ke; k0 += kBK) {
    load_slice<LA::k_contiguous>(a, As, m0, M, k0, ke, tid);
    load_slice<LB::k_contiguous>(b, Bs, n0, N, k0, ke, tid);
    __syncthreads();
GEMM_TILE_UNROLL
    for (int kk = 0; kk < kBK; ++kk) {
      float av[4], bv[4];
GEMM_TILE_UNROLL
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
GEMM_TILE_UNROLL
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
GEMM_TILE_UNROLL
      for (int i = 0; i < 4; ++i)
GEMM_TILE_UNROLL
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
GEMM_TILE_UNROLL
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
GEMM_TILE_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= N) continue;
      if (out.partial != nullptr) {
        out.partial[(static_cast<int64_t>(blockIdx.z) * M + m) * N + n] = acc[i][j];
      } else {
        float v = acc[i][j];
        T* p = out.c + m * out.ldc + n;
        if (out.bias != nullptr) v += to_f(out.bias[n]);
        if (out.accumulate) v += to_f(*p);
        store_f(p, v);
      }
    }
  }
}

// C[m, n] (+)= Σ_z partial[z][m][n], z in order.
template <class T>
__global__ void __launch_bounds__(256)
    splitk_sum_kernel(T* c, int64_t ldc, const float* partial, int64_t M, int64_t N, int splits, int accumulate) {
  const int64_t MN = M * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < MN;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t m = i / N, n = i - m * N;
    T* p = c + m * ldc + n;
    float v = accumulate ? to_f(*p) : 0.f;
    for (int z = 0; z < splits; ++z) v += partial[z * MN + i];
    store_f(p, v);
  }
}

// Largest sizes the kernels index with int: every operand and C below 2^31 elements.
inline constexpr int64_t kMaxIndex = 2147483647;

// The split count used for depth K: `requested` (> 0, at most one chunk of 16
// per split and kMaxSplits), or for 0 a function of the shape alone: 1 when
// the tiles already fill the device (>= 128 blocks) or K is short, else enough
// chunks of at least 2048 to reach about 256 blocks (and at most 64 MiB of
// partial sums).
inline int resolve_splits(int requested, int64_t M, int64_t N, int64_t K) {
  const int64_t max_by_k = std::max<int64_t>(1, ceil_div(K, kBK));
  int64_t s = 1;
  if (requested > 0) {
    s = std::min<int64_t>({static_cast<int64_t>(requested), max_by_k, kMaxSplits});
  } else {
    const int64_t tiles = ceil_div(M, kBM) * ceil_div(N, kBN);
    if (tiles < 128 && K >= 4096) {
      s = std::min<int64_t>({ceil_div(256, tiles), ceil_div(K, 2048), static_cast<int64_t>(kMaxSplits)});
      const int64_t cap = (int64_t{64} << 20) / std::max<int64_t>(1, 4 * M * N);
      s = std::max<int64_t>(1, std::min(s, cap));
    }
  }
  // Equal chunks that are multiples of 16; drop splits left empty by the rounding.
  const int64_t chunk = std::max<int64_t>(kBK, ceil_div(ceil_div(K, s), kBK) * kBK);
  return static_cast<int>(std::max<int64_t>(1, ceil_div(K, chunk)));
}

// C (=, += / + bias) = A·Bᵀ on `stream`; splits from resolve_splits (> 1 only without bias).
template <class T, class LA, class LB>
void run_gemm(const LA& a, const LB& b, T* c, int64_t ldc, const T* bias, bool accumulate, int64_t M, int64_t N,
              int64_t K, int splits, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  // (a tile's last row / depth index, m0 + 63 and k0 + 15, must fit in int too)
  SIMCLR_CHECK(M <= kMaxIndex - kBM && N <= kMaxIndex - kBN && K <= kMaxIndex - kBK && M * ldc <= kMaxIndex,
               "gemm: sizes over 2^31 (M ", M, ", N ", N, ", K ", K, ")");
  SIMCLR_CHECK(ceil_div(N, kBN) <= 65535, "gemm: N = ", N, " is too large");
  SIMCLR_CHECK(splits >= 1 && splits <= kMaxSplits && (splits == 1 || bias == nullptr), "gemm: splits = ", splits);
  const int64_t chunk = std::max<int64_t>(kBK, ceil_div(ceil_div(K, splits), kBK) * kBK);
  const dim3 grid(static_cast<unsigned>(ceil_div(M, kBM)), static_cast<unsigned>(ceil_div(N, kBN)),
                  static_cast<unsigned>(splits));
  Out<T> out;
  if (splits == 1) {
    out.c = c;
    out.ldc = ldc;
    out.bias = bias;
    out.accumulate = accumulate ? 1 : 0;
    launch(gemm_tile_kernel<T, LA, LB>, grid, dim3(kThreads), 0, stream, a, b, out, static_cast<int>(M),
           static_cast<int>(N), static_cast<int>(K), static_cast<int>(chunk));
    return;
  }
  SIMCLR_CHECK(static_cast<int64_t>(splits) * M * N <= kMaxIndex, "gemm: split-K workspace over 2^31 floats");
  float* partial = nullptr;
  CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), sizeof(float) * splits * M * N, stream));
  out.partial = partial;
  launch(gemm_tile_kernel<T, LA, LB>, grid, dim3(kThreads), 0, stream, a, b, out, static_cast<int>(M),
         static_cast<int>(N), static_cast<int>(K), static_cast<int>(chunk));
  const int64_t blocks = std::min<int64_t>(ceil_div(M * N, 256), 4096);
  launch_nobarrier(splitk_sum_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, c, ldc,
                   static_cast<const float*>(partial), M, N, splits, accumulate ? 1 : 0);
  CUDA_CHECK(cudaFreeAsync(partial, stream));
}

}  // namespace simclr::SIMCLR_KNS::tile
