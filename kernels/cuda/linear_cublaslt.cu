// kernels/cuda/linear_cublaslt.cu - the cuBLASLt path of linear on CUDA.
// Contract and settings in kernels/elementwise.h
// (SIMCLR_LINEAR_CUBLASLT_LAUNCHERS) and engine/device.h.
//
// Row-major [R,C] is column-major C×R with leading dimension C, so the three
// products are column-major GEMMs D(m×n) = op(A) op(B) (+ C):
//   forward  y^T[O×N]  = (w as I×O)^T · (x as I×N)           m=O n=N k=I, + bias[m]
//   dx       dx^T[I×N] += (w as I×O) · (dy as O×N)           m=I n=N k=O, beta 1
//   dw       dw^T[I×O] += (x as I×N) · (dy as O×N)^T         m=I n=O k=N, beta 1
// The forward's bias is CUBLASLT_EPILOGUE_BIAS (a vector of m = O values
// broadcast over the columns); should the heuristic find no algorithm with
// it, y is filled with the bias rows first and the GEMM adds into it. db is
// not the BGRADB epilogue (that writes db, the contract accumulates): a
// column sum of dy in fp32, in a fixed order (deterministic), added into db.
//
// Compute type CUBLAS_COMPUTE_32F, scale type fp32; float operands use
// CUBLAS_COMPUTE_32F_FAST_TF32 only under CudaMath::tf32. Under
// cuda_deterministic() the heuristic is restricted to algorithms without a
// split-K reduction. The heuristic's choice (and the descriptors it was made
// for) is cached per (device, product, dtype, math, determinism, shape,
// pointer alignments) in an LRU cache of 256 entries; the workspace (at most
// kMaxWorkspace) comes from the stream-ordered pool at each call. One
// cublasLtHandle_t per device; one mutex serialises handles and cache.
//
// The real build only (the emulated build compiles every .cu; this one is
// empty there).
#ifndef SIMCLR_EMU

#include "kernels/cuda/common.cuh"

#include <cublasLt.h>

#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/device.h"
#include "kernels/cuda/library_util.cuh"
#include "kernels/elementwise.h"

namespace simclr::gpu {

namespace {

constexpr size_t kMaxWorkspace = 32u << 20;

enum class Product : int64_t { forward_bias = 1, forward = 2, dx = 3, dw = 4 };

struct Ctx {
  Product product;
  bool bf16;
  bool tf32;
  bool deterministic;
  int64_t N, I, O;
};

std::string describe(const Ctx& c) {
  const char* p = c.product == Product::forward_bias ? "forward (bias epilogue)"
                  : c.product == Product::forward    ? "forward"
                  : c.product == Product::dx         ? "backward dx"
                                                     : "backward dw";
  return ::simclr::detail::cat("linear ", p, " (N=", c.N, " I=", c.I, " O=", c.O, "; ", c.bf16 ? "bf16" : "f32", ", ",
                     c.bf16 ? "fp32 compute" : (c.tf32 ? "tf32 allowed" : "strict fp32"),
                     c.deterministic ? ", deterministic" : "", ")");
}

[[noreturn]] void lt_failed(const char* call, cublasStatus_t st, const Ctx& c) {
  int dev = -1;
  cudaGetDevice(&dev);
  fail("cuBLASLt error: ", call, " failed: ", cublasLtGetStatusString(st), " (status ", static_cast<int>(st), ") for ",
       describe(c), " on cuda:", dev);
}
#define LT_CHECK(call, ctx)                                      \
  do {                                                           \
    cublasStatus_t s_ = (call);                                  \
    if (s_ != CUBLAS_STATUS_SUCCESS) lt_failed(#call, s_, (ctx)); \
  } while (0)

// One cached GEMM: descriptors, the heuristic's algorithm, its workspace.
struct Gemm {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  bool bias_epilogue = false;
  Gemm() = default;
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  ~Gemm() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  ~Preference() {
    if (p) cublasLtMatmulPreferenceDestroy(p);
  }
};

std::mutex g_mu;  // the handles and the cache
lib::LruCache<Gemm>& gemm_cache() {
  static lib::LruCache<Gemm> c(256);
  return c;
}

cublasLtHandle_t handle_for(int device, const Ctx& c) {
  static std::vector<cublasLtHandle_t> handles(64, nullptr);  // never destroyed: they live as long as the process
  SIMCLR_CHECK(device >= 0 && device < static_cast<int>(handles.size()), "cuBLASLt: device ", device, " out of range");
  if (!handles[device]) LT_CHECK(cublasLtCreate(&handles[device]), c);
  return handles[device];
}

// The column-major GEMM of a product: D(m×n) = op(A)(m×k) op(B)(k×n), each
// matrix given as stored (rows × cols, leading dimension).
struct Spec {
  cublasOperation_t ta, tb;
  uint64_t a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
  int64_t lda, ldb, ldc;
};
Spec spec_of(const Ctx& c) {
  const auto N = static_cast<uint64_t>(c.N), I = static_cast<uint64_t>(c.I), O = static_cast<uint64_t>(c.O);
  switch (c.product) {
    case Product::forward_bias:
    case Product::forward:  // A = w (I×O)^T, B = x (I×N), D = y (O×N)
      return {CUBLAS_OP_T, CUBLAS_OP_N, I, O, I, N, O, N, c.I, c.I, c.O};
    case Product::dx:  // A = w (I×O), B = dy (O×N), D = dx (I×N)
      return {CUBLAS_OP_N, CUBLAS_OP_N, I, O, O, N, I, N, c.I, c.O, c.I};
    case Product::dw:  // A = x (I×N), B = dy (O×N)^T, D = dw (I×O)
      return {CUBLAS_OP_N, CUBLAS_OP_T, I, N, O, N, I, O, c.I, c.O, c.I};
  }
  fail("linear (cuBLASLt): unknown product");
}

// Builds descriptors and asks the heuristic; nullptr when it has no
// algorithm for them (only tolerated for the bias epilogue).
std::shared_ptr<Gemm> build_gemm(cublasLtHandle_t h, const Ctx& c, const std::array<int64_t, 4>& align,
                                 const void* bias) {
  const Spec s = spec_of(c);
  const cudaDataType_t type = c.bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute = (!c.bf16 && c.tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  auto g = std::make_shared<Gemm>();
  LT_CHECK(cublasLtMatmulDescCreate(&g->op, compute, CUDA_R_32F), c);
  LT_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &s.ta, sizeof(s.ta)), c);
  LT_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &s.tb, sizeof(s.tb)), c);
  if (c.product == Product::forward_bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), c);
    const int32_t bias_type = type;
    LT_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)),
             c);
    // the heuristic reads the pointer's alignment (the key holds it)
    LT_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), c);
    g->bias_epilogue = true;
  }
  LT_CHECK(cublasLtMatrixLayoutCreate(&g->a, type, s.a_rows, s.a_cols, s.lda), c);
  LT_CHECK(cublasLtMatrixLayoutCreate(&g->b, type, s.b_rows, s.b_cols, s.ldb), c);
  LT_CHECK(cublasLtMatrixLayoutCreate(&g->c, type, s.c_rows, s.c_cols, s.ldc), c);

  Preference pref;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref.p), c);
  const uint64_t max_ws = kMaxWorkspace;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws,
                                                sizeof(max_ws)),
           c);
  const uint32_t al_a = static_cast<uint32_t>(align[0]), al_b = static_cast<uint32_t>(align[1]),
                 al_c = static_cast<uint32_t>(align[2]);
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)),
           c);
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)),
           c);
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)),
           c);
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)),
           c);
  if (c.deterministic) {
    const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask,
                                                  sizeof(mask)),
             c);
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(h, g->op, g->a, g->b, g->c, g->c, pref.p, 1, &result, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)) {
    if (c.product == Product::forward_bias) return nullptr;
    fail("cuBLASLt error: cublasLtMatmulAlgoGetHeuristic found no algorithm for ", describe(c),
         " (pointer alignments ", align[0], "/", align[1], "/", align[2], " bytes)");
  }
  if (st != CUBLAS_STATUS_SUCCESS) lt_failed("cublasLtMatmulAlgoGetHeuristic", st, c);
  g->algo = result.algo;
  g->workspace = result.workspaceSize;
  return g;
}

template <class T>
constexpr bool is_bf16 = std::is_same_v<T, ::simclr::bf16>;

template <class T>
Ctx make_ctx(Product p, int64_t N, int64_t I, int64_t O) {
  return Ctx{p, is_bf16<T>, !is_bf16<T> && cuda_math() == CudaMath::tf32, cuda_deterministic(), N, I, O};
}

// The cached GEMM of a product for these pointers (nullptr: the bias
// epilogue has no algorithm). Call with g_mu held.
std::shared_ptr<Gemm> gemm_for(cublasLtHandle_t h, int device, const Ctx& c, const void* a, const void* b,
                               const void* d, const void* bias) {
  const std::array<int64_t, 4> align{lib::pointer_alignment(a, 256), lib::pointer_alignment(b, 256),
                                     lib::pointer_alignment(d, 256), bias ? lib::pointer_alignment(bias, 256) : 0};
  const lib::Key key{device, static_cast<int64_t>(c.product), c.bf16, c.tf32, c.deterministic, c.N, c.I, c.O,
                     align[0], align[1], align[2], align[3]};
  return gemm_cache().get(key, [&] { return build_gemm(h, c, align, bias); });
}

// D = alpha op(A) op(B) + beta D.
void matmul(cublasLtHandle_t h, int device, const Ctx& c, const Gemm& g, const void* a, const void* b, void* d,
            float beta, const void* bias, cudaStream_t stream) {
  if (g.bias_epilogue)
    LT_CHECK(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), c);
  lib::StreamScratch ws(g.workspace, stream, device);
  const float alpha = 1.0f;
  LT_CHECK(cublasLtMatmul(h, g.op, &alpha, a, g.a, b, g.b, &beta, d, g.c, d, g.c, &g.algo, ws.get(), g.workspace,
                          stream),
           c);
}

// y[n, o] = b[o]
template <class D>
__global__ void fill_rows_kernel(D* __restrict__ y, const D* __restrict__ b, int64_t N, int64_t O) {
  const int64_t n = N * O, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) y[i] = b[i % O];
}

// db[o] += Σ_n dy[n, o]: 32 columns per block, 8 row phases per column summed
// in fp32 and combined in phase order (the same order every run).
template <class D>
__global__ void column_sum_kernel(D* __restrict__ db, const D* __restrict__ dy, int64_t N, int64_t O) {
  SIMCLR_SHARED(float, part, [8][33]);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t o = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  float s = 0.0f;
  if (o < O)
    for (int64_t n = ty; n < N; n += 8) s += to_float(dy[n * O + o]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && o < O) {
    float t = 0.0f;
    for (int r = 0; r < 8; r++) t += part[r][tx];
    db[o] = from_float<D>(to_float(db[o]) + t);
  }
}

void check_sizes(int64_t N, int64_t I, int64_t O) {
  SIMCLR_CHECK(N >= 0 && I >= 0 && O >= 0, "linear (cuBLASLt): negative size N=", N, " I=", I, " O=", O);
}

template <class T>
void forward_impl(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  check_sizes(N, I, O);
  if (N == 0 || O == 0) return;
  auto* yd = dev(y);
  const auto* bd = dev(b);
  if (I == 0) {  // an empty product: y = b (or 0)
    if (b) {
      launch_nobarrier(fill_rows_kernel<device_type_t<T>>, dim3(static_cast<unsigned>(std::min<int64_t>(ceil_div(N * O, 256), 8192))),
                       dim3(256), 0, stream, yd, bd, N, O);
    } else {
      CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(N * O) * sizeof(T), stream));
    }
    return;
  }
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(g_mu);
  if (b) {
    const Ctx c = make_ctx<T>(Product::forward_bias, N, I, O);
    cublasLtHandle_t h = handle_for(device, c);
    if (auto g = gemm_for(h, device, c, w, x, y, b)) {
      matmul(h, device, c, *g, w, x, y, 0.0f, b, stream);
      return;
    }
    // no algorithm with the bias epilogue for these pointers: y = b rows, then y += x w^T
    launch_nobarrier(fill_rows_kernel<device_type_t<T>>, dim3(static_cast<unsigned>(std::min<int64_t>(ceil_div(N * O, 256), 8192))),
                     dim3(256), 0, stream, yd, bd, N, O);
  }
  const Ctx c = make_ctx<T>(Product::forward, N, I, O);
  cublasLtHandle_t h = handle_for(device, c);
  auto g = gemm_for(h, device, c, w, x, y, nullptr);
  matmul(h, device, c, *g, w, x, y, b ? 1.0f : 0.0f, nullptr, stream);
}

template <class T>
void backward_impl(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O,
                   cudaStream_t stream) {
  check_sizes(N, I, O);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(g_mu);
  // (an empty sum adds nothing: k = 0 products are skipped)
  if (dx && N > 0 && I > 0 && O > 0) {
    const Ctx c = make_ctx<T>(Product::dx, N, I, O);
    cublasLtHandle_t h = handle_for(device, c);
    auto g = gemm_for(h, device, c, w, dy, dx, nullptr);
    matmul(h, device, c, *g, w, dy, dx, 1.0f, nullptr, stream);
  }
  if (dw && N > 0 && I > 0 && O > 0) {
    const Ctx c = make_ctx<T>(Product::dw, N, I, O);
    cublasLtHandle_t h = handle_for(device, c);
    auto g = gemm_for(h, device, c, x, dy, dw, nullptr);
    matmul(h, device, c, *g, x, dy, dw, 1.0f, nullptr, stream);
  }
  if (db && N > 0 && O > 0) {
    launch(column_sum_kernel<device_type_t<T>>, dim3(static_cast<unsigned>(ceil_div(O, 32))), dim3(32, 8), 0, stream,
           dev(db), dev(dy), N, O);
  }
}

#undef LT_CHECK

}  // namespace

void linear_forward_cublaslt(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, int64_t O,
                             cudaStream_t stream) {
  forward_impl(y, x, w, b, N, I, O, stream);
}
void linear_forward_cublaslt(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,
                             const ::simclr::bf16* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  forward_impl(y, x, w, b, N, I, O, stream);
}
void linear_backward_cublaslt(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                              int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  backward_impl(dx, dw, db, dy, x, w, N, I, O, stream);
}
void linear_backward_cublaslt(::simclr::bf16* dx, ::simclr::bf16* dw, ::simclr::bf16* db, const ::simclr::bf16* dy,
                              const ::simclr::bf16* x, const ::simclr::bf16* w, int64_t N, int64_t I, int64_t O,
                              cudaStream_t stream) {
  backward_impl(dx, dw, db, dy, x, w, N, I, O, stream);
}

CublasLtCacheStats linear_cublaslt_cache_stats() {
  std::lock_guard<std::mutex> lock(g_mu);
  const auto& c = gemm_cache();
  return {c.hits(), c.misses(), c.size(), c.capacity()};
}

void linear_cublaslt_cache_clear() {
  std::lock_guard<std::mutex> lock(g_mu);
  gemm_cache().clear();
}

}  // namespace simclr::gpu

#endif  // SIMCLR_EMU
