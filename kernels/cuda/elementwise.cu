// kernels/cuda/elementwise.cu - CUDA twins of relu, add, add_relu,
// sum_product, mean and scale (contracts and CPU reference: kernels/
// elementwise.h, kernels/cpu/elementwise.cpp; rows in kernels/cuda/table.cu).
// Also compiled by the kernel emulator (tests/emu/test_elementwise_pool_emu.cpp).
//
// Elementwise ops: one barrier-free grid-stride kernel per op (map_kernel, an
// op functor applied to W consecutive elements at a time). When every pointer
// is 16-byte aligned the body moves 16 bytes per load/store (W = 4 floats or 8
// bf16) and a scalar loop does the last n % W elements; otherwise the whole
// range goes scalar. Arithmetic in fp32; bf16 is converted on load and rounded
// once at the store. Each element's outputs are written in the CPU order (da
// before db, db read after da's store), so da == db (add(x, x)) gives the
// CPU's result: the second share accumulates onto the first.
//
// Reductions (sum_product, mean): each of P blocks (P a function of n only)
// sums a grid-stride slice in double, the block's 256 sums are added by a
// fixed shared-memory tree into partial[b]; then one block adds the P
// partials the same way and writes y[0] (=). Fixed order: the same bits every
// run, on every device. P = 1 needs no second pass and no workspace; P > 1
// takes P doubles from the stream-ordered allocator (cudaMallocAsync, the pool
// the engine's tensors come from; capturable in a CUDA graph).
#include "kernels/elementwise.h"

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"

// The host compiler of the emulated build does not know the pragma.

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride beyond that (about 30 blocks per SM on an H100)

template <class S>
__device__ __forceinline__ S from_d(double x) {
  if constexpr (std::is_same_v<S, float>)
    return static_cast<float>(x);
  else
    return __double2bfloat16(x);  // one rounding, double -> bf16
}

// Elements per 16-byte vector.
template <class S>
constexpr int kVec = 16 / static_cast<int>(sizeof(S));

// v[0..W) = p[0..W) as floats; W = kVec<S> is one 16-byte load (p aligned).
template <int W, class S>
__device__ __forceinline__ void load(float (&v)[W], const S* p) {
  if constexpr (W == 1) {
    v[0] = to_float(p[0]);
  } else {
    static_assert(W == kVec<S>, "load: one 16-byte vector");
    const float4 raw = *reinterpret_cast<const float4*>(p);
    S e[W];
    memcpy(static_cast<void*>(e), &raw, 16);
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) v[k] = to_float(e[k]);
  }
}

template <int W, class S>
__device__ __forceinline__ void store(S* p, const float (&v)[W]) {
  if constexpr (W == 1) {
    p[0] = from_float<S>(v[0]);
  } else {
    static_assert(W == kVec<S>, "store: one 16-byte vector");
    S e[W];
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) e[k] = from_float<S>(v[k]);
    float4 raw;
    memcpy(&raw, static_cast<const void*>(e), 16);
    *reinterpret_cast<float4*>(p) = raw;
  }
}

// out[0..W) (+)= g: += when accumulate, else =.
template <int W, class S>
__device__ __forceinline__ void put(S* out, bool accumulate, const float (&g)[W]) {
  float v[W];
  if (accumulate) {
    load<W>(v, out);
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) v[k] += g[k];
  } else {
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) v[k] = g[k];
  }
  store<W>(out, v);
}

// ---- the op functors: apply<W>(i) handles elements [i, i + W)

template <class S>
struct ReluFwd {
  S* y;
  const S* x;
  template <int W>
  __device__ void apply(int64_t i) const {
    float v[W];
    load<W>(v, x + i);
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) v[k] = v[k] > 0.0f ? v[k] : 0.0f;  // NaN -> 0, as the CPU's x > 0 ? x : 0
    store<W>(y + i, v);
  }
};

// g = dy * (y > 0) (or dy when y is null); da (+)= g, then db (+)= g (each skipped when null).
template <class S>
struct GradShares {
  S* da;
  S* db;
  const S* dy;
  const S* y;  // the forward output (ReLU mask), or null: no mask
  bool acc_a, acc_b;
  template <int W>
  __device__ void apply(int64_t i) const {
    float g[W];
    load<W>(g, dy + i);
    if (y) {
      float m[W];
      load<W>(m, y + i);
SIMCLR_UNROLL
      for (int k = 0; k < W; k++) g[k] = m[k] > 0.0f ? g[k] : 0.0f;
    }
    if (da) put<W>(da + i, acc_a, g);
    if (db) put<W>(db + i, acc_b, g);  // reads db after da's store: da == db accumulates the second share
  }
};

template <class S, bool RELU>
struct AddFwd {
  S* y;
  const S* a;
  const S* b;
  template <int W>
  __device__ void apply(int64_t i) const {
    float u[W], v[W];
    load<W>(u, a + i);
    load<W>(v, b + i);
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) {
      u[k] += v[k];
      if constexpr (RELU) u[k] = u[k] < 0.0f ? 0.0f : u[k];  // std::max(a + b, 0): NaN and -0 stay
    }
    store<W>(y + i, u);
  }
};

// out (+)= a x: scale (a = float(s); "0 +" so that a zero product is +0 as on the CPU) and
// sum_product's backward (a = dy[0], read on the device; +=).
template <class S>
struct Axpy {
  S* out;
  const S* x;
  const S* a_ptr;  // the factor on the device (a_ptr[0]), or null: a
  float a;
  bool accumulate;
  template <int W>
  __device__ void apply(int64_t i) const {
    const float f = a_ptr ? to_float(a_ptr[0]) : a;
    float v[W], o[W];
    load<W>(v, x + i);
    if (accumulate) {
      load<W>(o, out + i);
SIMCLR_UNROLL
      for (int k = 0; k < W; k++) o[k] += f * v[k];
    } else {
SIMCLR_UNROLL
      for (int k = 0; k < W; k++) o[k] = 0.0f + f * v[k];
    }
    store<W>(out + i, o);
  }
};

// out += dy[0] / n   (mean's backward; the quotient in fp32 as the CPU's T(dy[0]) / T(n) for float)
template <class S>
struct AddQuotient {
  S* out;
  const S* dy;
  float n;
  template <int W>
  __device__ void apply(int64_t i) const {
    const float g = to_float(dy[0]) / n;
    float o[W];
    load<W>(o, out + i);
SIMCLR_UNROLL
    for (int k = 0; k < W; k++) o[k] += g;
    store<W>(out + i, o);
  }
};

// Elements [0, n): vectors of kVec<S> while `vec` (every pointer 16-byte aligned), then a scalar tail.
template <class S, class F>
__global__ void __launch_bounds__(kThreads) map_kernel(F f, int64_t n, int vec) {
  constexpr int W = kVec<S>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n / W;
    for (int64_t v = t; v < nv; v += stride) f.template apply<W>(v * W);
    done = nv * W;
  }
  for (int64_t i = done + t; i < n; i += stride) f.template apply<1>(i);
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class S, class F>
void run_map(const F& f, int64_t n, bool aligned, cudaStream_t stream) {
  SIMCLR_CHECK(n >= 0, "elementwise kernel: n = ", n);
  if (n == 0) return;
  const bool vec = aligned && n >= kVec<S>;
  const int64_t work = vec ? n / kVec<S> + n % kVec<S> : n;
  const int64_t blocks = std::min<int64_t>(ceil_div(work, kThreads), kMaxBlocks);
  launch_nobarrier(map_kernel<S, F>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, f, n,
                   vec ? 1 : 0);
}

// ---- reductions

// The block's sum of v (kThreads threads), fixed tree order; valid in thread 0.
__device__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int h = kThreads / 2; h > 0; h >>= 1) {
    if (static_cast<int>(threadIdx.x) < h) red[threadIdx.x] += red[threadIdx.x + h];
    __syncthreads();
  }
  return red[0];
}

// partial[blockIdx.x] = Σ over the block's grid-stride slice of a_i (r_i when r is not null), in
// double. With one block the result goes straight to y[0] = S(sum / div).
template <class S>
__global__ void __launch_bounds__(kThreads)
    reduce_partial_kernel(double* partial, S* y, const S* a, const S* r, int64_t n, double div) {
  SIMCLR_SHARED(double, red, [kThreads]);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  double s = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double v = static_cast<double>(to_float(a[i]));
    s += r ? v * static_cast<double>(to_float(r[i])) : v;
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) {
    if (gridDim.x == 1)
      y[0] = from_d<S>(s / div);
    else
      partial[blockIdx.x] = s;
  }
}

// y[0] = S((Σ_b partial[b]) / div), one block.
template <class S>
__global__ void __launch_bounds__(kThreads) reduce_final_kernel(S* y, const double* partial, int P, double div) {
  SIMCLR_SHARED(double, red, [kThreads]);
  double s = 0.0;
  for (int b = threadIdx.x; b < P; b += kThreads) s += partial[b];
  s = block_sum(s, red);
  if (threadIdx.x == 0) y[0] = from_d<S>(s / div);
}

// y[0] = (Σ a_i [r_i]) / div.
template <class S>
void reduce(S* y, const S* a, const S* r, int64_t n, double div, cudaStream_t stream) {
  SIMCLR_CHECK(n >= 0 && y != nullptr && a != nullptr, "reduction kernel: n = ", n, ", y and a must not be null");
  // At least 2048 elements per block (8 per thread) before a second block: small inputs take one launch.
  const int64_t P = std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, 8 * kThreads), 1024));
  if (P == 1) {
    launch(reduce_partial_kernel<S>, dim3(1), dim3(kThreads), 0, stream, static_cast<double*>(nullptr), y, a, r, n,
           div);
    return;
  }
  double* partial = nullptr;
  CUDA_CHECK(cudaMallocAsync(&partial, static_cast<size_t>(P) * sizeof(double), stream));
  launch(reduce_partial_kernel<S>, dim3(static_cast<unsigned>(P)), dim3(kThreads), 0, stream, partial, y, a, r, n,
         div);
  launch(reduce_final_kernel<S>, dim3(1), dim3(kThreads), 0, stream, y, static_cast<const double*>(partial),
         static_cast<int>(P), div);
  CUDA_CHECK(cudaFreeAsync(partial, stream));
}

// ---- the launchers' bodies, on the storage type S (float or __nv_bfloat16)

template <class S>
void relu_fwd(S* y, const S* x, int64_t n, cudaStream_t st) {
  run_map<S>(ReluFwd<S>{y, x}, n, aligned16(y) && aligned16(x), st);
}
template <class S>
void shares(S* da, bool acc_a, S* db, bool acc_b, const S* dy, const S* y, int64_t n, cudaStream_t st) {
  if (!da && !db) return;
  run_map<S>(GradShares<S>{da, db, dy, y, acc_a, acc_b}, n,
             aligned16(da) && aligned16(db) && aligned16(dy) && aligned16(y), st);
}
template <class S, bool RELU>
void add_fwd(S* y, const S* a, const S* b, int64_t n, cudaStream_t st) {
  run_map<S>(AddFwd<S, RELU>{y, a, b}, n, aligned16(y) && aligned16(a) && aligned16(b), st);
}
template <class S>
void axpy(S* out, const S* x, const S* a_ptr, float a, bool accumulate, int64_t n, cudaStream_t st) {
  run_map<S>(Axpy<S>{out, x, a_ptr, a, accumulate}, n, aligned16(out) && aligned16(x), st);
}
template <class S>
void mean_bwd(S* dx, const S* dy, int64_t n, cudaStream_t st) {
  run_map<S>(AddQuotient<S>{dx, dy, static_cast<float>(n)}, n, aligned16(dx), st);
}


}  // namespace

#define SIMCLR_ELEMENTWISE_DEFINE(T)                                                                              \
  void relu_forward(T* y, const T* x, int64_t n, cudaStream_t stream) { relu_fwd(dev(y), dev(x), n, stream); }   \
  void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n, cudaStream_t stream) {           \
    shares(dev(dx), accumulate, dev(static_cast<T*>(nullptr)), false, dev(dy), dev(y), n, stream);               \
  }                                                                                                               \
  void add_forward(T* y, const T* a, const T* b, int64_t n, cudaStream_t stream) {                                \
    add_fwd<device_type_t<T>, false>(dev(y), dev(a), dev(b), n, stream);                                              \
  }                                                                                                               \
  void add_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n,                   \
                    cudaStream_t stream) {                                                                        \
    shares(dev(da), accumulate_a, dev(db), accumulate_b, dev(dy), dev(static_cast<const T*>(nullptr)), n, stream); \
  }                                                                                                               \
  void add_relu_forward(T* y, const T* a, const T* b, int64_t n, cudaStream_t stream) {                           \
    add_fwd<device_type_t<T>, true>(dev(y), dev(a), dev(b), n, stream);                                               \
  }                                                                                                               \
  void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n,  \
                         cudaStream_t stream) {                                                                   \
    shares(dev(da), accumulate_a, dev(db), accumulate_b, dev(dy), dev(y), n, stream);                             \
  }                                                                                                               \
  void sum_product_forward(T* y, const T* a, const T* r, int64_t n, cudaStream_t stream) {                        \
    SIMCLR_CHECK(r != nullptr, "sum_product_forward: r is null");                                                 \
    reduce(dev(y), dev(a), dev(r), n, 1.0, stream);                                                               \
  }                                                                                                               \
  void sum_product_backward(T* da, const T* r, const T* dy, int64_t n, cudaStream_t stream) {                     \
    axpy(dev(da), dev(r), dev(dy), 0.0f, true, n, stream);                                                  \
  }                                                                                                               \
  void mean_forward(T* y, const T* x, int64_t n, cudaStream_t stream) {                                           \
    SIMCLR_CHECK(n > 0, "mean_forward: n = ", n);                                                                 \
    reduce(dev(y), dev(x), dev(static_cast<const T*>(nullptr)), n, static_cast<double>(n), stream);              \
  }                                                                                                               \
  void mean_backward(T* dx, const T* dy, int64_t n, cudaStream_t stream) {                                        \
    mean_bwd(dev(dx), dev(dy), n, stream);                                                                        \
  }                                                                                                               \
  void scale_forward(T* y, const T* x, double s, int64_t n, cudaStream_t stream) {                                \
    axpy(dev(y), dev(x), dev(static_cast<const T*>(nullptr)), static_cast<float>(s), false, n, stream);    \
  }                                                                                                               \
  void scale_backward(T* dx, const T* dy, double s, int64_t n, cudaStream_t stream) {                             \
    axpy(dev(dx), dev(dy), dev(static_cast<const T*>(nullptr)), static_cast<float>(s), true, n, stream);   \
  }

SIMCLR_ELEMENTWISE_DEFINE(float)
SIMCLR_ELEMENTWISE_DEFINE(::simclr::bf16)
#undef SIMCLR_ELEMENTWISE_DEFINE

}  // namespace simclr::SIMCLR_KNS
