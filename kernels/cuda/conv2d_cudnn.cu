// kernels/cuda/conv2d_cudnn.cu - the cuDNN path of conv2d on CUDA: forward,
// backward-data and backward-filter as one-node cuDNN graphs (the C++ cuDNN
// frontend's graph API over the cuDNN 9 backend). Contract and settings in
// kernels/conv2d.h (SIMCLR_CONV2D_CUDNN_LAUNCHERS) and engine/device.h.
//
// Layouts: cuDNN's tensors are described with NCHW-ordered dims and the
// strides of our memory order, so NHWC activations are
//   dims {N, C, H, W}, strides {H·W·C, 1, W·C, C}
// and OHWI weights (cuDNN's KRSC) are dims {O, C, kH, kW}, strides
// {kH·kW·C, 1, kW·C, C}. Cross-correlation, symmetric zero padding, no
// dilation: the same y as kernels/cpu/conv2d.cpp.
//
// Plans: a graph is validated, lowered, given engine configs by the
// heuristics (modes A and FALLBACK), filtered by the settings below, and the
// first config that builds is kept: once per key (device, direction, dtype,
// math, determinism, shape, pointer alignments) in an LRU cache of 256
// plans. Engine filters (numerical notes):
//   always: no DOWN_CONVERT_INPUTS, no REDUCED_PRECISION_REDUCTION (the
//     contract computes in fp32);
//   float under CudaMath::fp32: also no TENSOR_CORE (for float operands
//     that is TF32), no FFT and no Winograd (their transforms lose accuracy
//     well beyond a plain fp32 sum);
//   cuda_deterministic(): also no NONDETERMINISTIC engine.
// Accumulation: the frontend's convolution nodes fix beta at 0, so dw (always
// +=) and dx (+= when dx_accumulate) are computed into a stream-ordered
// temporary and added by lib::accumulate (fp32 add, one rounding to T).
// One cudnnHandle_t per device, bound to the caller's stream at every call;
// one mutex serialises the plan cache and the handles (the calls only queue
// work, so it is held briefly).
//
// The real build only: the emulated build (kernels/cuda/common.cuh) compiles
// every .cu, and this one is empty there. Without the cuDNN frontend
// (SIMCLR_HAVE_CUDNN_FRONTEND undefined; setup.sh installs it) every entry
// point throws "built without the cuDNN frontend".
#ifndef SIMCLR_EMU

#include "kernels/cuda/common.cuh"

#include <cstring>  // before the frontend: one of its headers uses std::strlen without including it
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/device.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/library_util.cuh"

#ifdef SIMCLR_HAVE_CUDNN_FRONTEND
#include <cudnn.h>
#include <cudnn_frontend.h>
#endif

namespace simclr::gpu {

namespace {

#ifdef SIMCLR_HAVE_CUDNN_FRONTEND
namespace fe = cudnn_frontend;

enum class Dir : int64_t { fprop = 1, dgrad = 2, wgrad = 3 };

// What one call computes: for keys and error messages.
struct Ctx {
  Dir dir;
  bool bf16;
  bool tf32;  // float only: TF32 engines allowed
  bool deterministic;
  Conv2dShape s;
};

std::string describe(const Ctx& c) {
  const char* d = c.dir == Dir::fprop ? "forward" : c.dir == Dir::dgrad ? "backward-data" : "backward-filter";
  const Conv2dShape& s = c.s;
  return ::simclr::detail::cat("conv2d ", d, " (x N=", s.N, " H=", s.H, " W=", s.W, " C=", s.C, ", w O=", s.O, " ", s.kH, "x",
                     s.kW, ", stride ", s.stride, ", pad ", s.pad, ", y ", s.Ho(), "x", s.Wo(), "; ",
                     c.bf16 ? "bf16" : "f32", ", ", c.bf16 ? "fp32 compute" : (c.tf32 ? "tf32 allowed" : "strict fp32"),
                     c.deterministic ? ", deterministic" : "", ")");
}

[[noreturn]] void fe_failed(const char* call, fe::error_t e, const Ctx& c) {
  int dev = -1;
  cudaGetDevice(&dev);
  fail("cuDNN error: ", call, " failed: ", e.get_message(), " (frontend error code ", static_cast<int>(e.get_code()),
       ") for ", describe(c), " on cuda:", dev);
}
[[noreturn]] void cudnn_failed(const char* call, cudnnStatus_t st, const Ctx& c) {
  int dev = -1;
  cudaGetDevice(&dev);
  fail("cuDNN error: ", call, " failed: ", cudnnGetErrorString(st), " (status ", static_cast<int>(st), ") for ",
       describe(c), " on cuda:", dev);
}
#define FE_CHECK(call, ctx)                                   \
  do {                                                        \
    auto e_ = (call);                                         \
    if (e_.is_bad()) fe_failed(#call, std::move(e_), (ctx));  \
  } while (0)
#define CUDNN_CTX_CHECK(call, ctx)                                 \
  do {                                                             \
    cudnnStatus_t s_ = (call);                                     \
    if (s_ != CUDNN_STATUS_SUCCESS) cudnn_failed(#call, s_, (ctx)); \
  } while (0)

// Variant-pack ids: activations, weights, outputs of the forward.
constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3;

struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
};

std::mutex g_mu;  // the handles and the plan cache
lib::LruCache<Plan>& plan_cache() {
  static lib::LruCache<Plan> c(256);
  return c;
}

cudnnHandle_t handle_for(int device, const Ctx& c) {
  static std::vector<cudnnHandle_t> handles(64, nullptr);  // never destroyed: they live as long as the process
  SIMCLR_CHECK(device >= 0 && device < static_cast<int>(handles.size()), "cuDNN: device ", device, " out of range");
  if (!handles[device]) CUDNN_CTX_CHECK(cudnnCreate(&handles[device]), c);
  return handles[device];
}

fe::graph::Tensor_attributes nhwc(const char* name, int64_t uid, fe::DataType_t type, int64_t n, int64_t c, int64_t h,
                                  int64_t w, int64_t alignment) {
  return fe::graph::Tensor_attributes()
      .set_name(name)
      .set_uid(uid)
      .set_data_type(type)
      .set_dim({n, c, h, w})
      .set_stride({h * w * c, 1, w * c, c})
      .set_alignment(alignment);
}

// Builds the plan of one key. align: byte alignments of the x/dx, w/dw and
// y/dy pointers (at most 16, cuDNN's default assumption).
std::shared_ptr<Plan> build_plan(cudnnHandle_t h, const Ctx& c, const std::array<int64_t, 3>& align) {
  const Conv2dShape& s = c.s;
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  const fe::DataType_t io = c.bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::FLOAT;
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(io).set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(fe::DataType_t::FLOAT);
  const std::vector<int64_t> pad{s.pad, s.pad}, stride{s.stride, s.stride}, dilation{1, 1};
  const auto x_attr = nhwc("x", kUidX, io, s.N, s.C, s.H, s.W, align[0]);
  const auto w_attr = nhwc("w", kUidW, io, s.O, s.C, s.kH, s.kW, align[1]);
  const auto y_attr = nhwc("y", kUidY, io, s.N, s.O, Ho, Wo, align[2]);
  std::shared_ptr<fe::graph::Tensor_attributes> out;
  const fe::graph::Tensor_attributes* out_like = nullptr;
  switch (c.dir) {
    case Dir::fprop: {
      auto X = g->tensor(x_attr), Wt = g->tensor(w_attr);
      out = g->conv_fprop(X, Wt,
                          fe::graph::Conv_fprop_attributes()
                              .set_name("fprop")
                              .set_padding(pad)
                              .set_stride(stride)
                              .set_dilation(dilation)
                              .set_compute_data_type(fe::DataType_t::FLOAT));
      out_like = &y_attr;
      break;
    }
    case Dir::dgrad: {
      auto DY = g->tensor(y_attr), Wt = g->tensor(w_attr);
      out = g->conv_dgrad(DY, Wt,
                          fe::graph::Conv_dgrad_attributes()
                              .set_name("dgrad")
                              .set_padding(pad)
                              .set_stride(stride)
                              .set_dilation(dilation)
                              .set_compute_data_type(fe::DataType_t::FLOAT));
      out_like = &x_attr;
      break;
    }
    case Dir::wgrad: {
      auto DY = g->tensor(y_attr), X = g->tensor(x_attr);
      out = g->conv_wgrad(DY, X,
                          fe::graph::Conv_wgrad_attributes()
                              .set_name("wgrad")
                              .set_padding(pad)
                              .set_stride(stride)
                              .set_dilation(dilation)
                              .set_compute_data_type(fe::DataType_t::FLOAT));
      out_like = &w_attr;
      break;
    }
  }
  out->set_output(true)
      .set_uid(out_like->get_uid())
      .set_data_type(io)
      .set_dim(out_like->get_dim())
      .set_stride(out_like->get_stride())
      .set_alignment(out_like->get_alignment());

  FE_CHECK(g->validate(), c);
  FE_CHECK(g->build_operation_graph(h), c);
  FE_CHECK(g->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}), c);
  std::vector<fe::NumericalNote_t> barred{fe::NumericalNote_t::DOWN_CONVERT_INPUTS,
                                          fe::NumericalNote_t::REDUCED_PRECISION_REDUCTION};
  if (!c.bf16 && !c.tf32) {
    for (auto n : {fe::NumericalNote_t::TENSOR_CORE, fe::NumericalNote_t::FFT, fe::NumericalNote_t::WINOGRAD,
                   fe::NumericalNote_t::WINOGRAD_TILE_4x4, fe::NumericalNote_t::WINOGRAD_TILE_6x6,
                   fe::NumericalNote_t::WINOGRAD_TILE_13x13})
      barred.push_back(n);
  }
  if (c.deterministic) barred.push_back(fe::NumericalNote_t::NONDETERMINISTIC);
  g->deselect_numeric_notes(barred);
  FE_CHECK(g->check_support(h), c);
  FE_CHECK(g->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), c);
  auto plan = std::make_shared<Plan>();
  FE_CHECK(g->get_workspace_size(plan->workspace), c);
  plan->graph = std::move(g);
  return plan;
}

template <class T>
constexpr bool is_bf16 = std::is_same_v<T, ::simclr::bf16>;

template <class T>
Ctx make_ctx(Dir dir, const Conv2dShape& s) {
  return Ctx{dir, is_bf16<T>, !is_bf16<T> && cuda_math() == CudaMath::tf32, cuda_deterministic(), s};
}

// Runs one direction: x/w/y are the graph's X (or DX), W (or DW), Y (or DY)
// pointers. Call with g_mu held.
void run(const Ctx& c, int device, cudnnHandle_t h, void* x, void* w, void* y, cudaStream_t stream, size_t elem) {
  const Conv2dShape& s = c.s;
  const std::array<int64_t, 3> align{lib::pointer_alignment(x, 16), lib::pointer_alignment(w, 16),
                                     lib::pointer_alignment(y, 16)};
  SIMCLR_CHECK(align[0] >= static_cast<int64_t>(elem) && align[1] >= static_cast<int64_t>(elem) &&
                   align[2] >= static_cast<int64_t>(elem),
               describe(c), ": a pointer is not aligned to its element size");
  const lib::Key key{device, static_cast<int64_t>(c.dir), c.bf16, c.tf32, c.deterministic, s.N, s.H, s.W, s.C, s.O,
                     s.kH, s.kW, s.stride, s.pad, align[0], align[1], align[2]};
  std::shared_ptr<Plan> plan = plan_cache().get(key, [&] { return build_plan(h, c, align); });
  lib::StreamScratch ws(static_cast<size_t>(plan->workspace), stream, device);
  std::unordered_map<int64_t, void*> pack{{kUidX, x}, {kUidW, w}, {kUidY, y}};
  FE_CHECK(plan->graph->execute(h, pack, ws.get()), c);
}

bool empty_shape(const Conv2dShape& s) { return s.N == 0 || s.O == 0 || s.C == 0 || s.Ho() <= 0 || s.Wo() <= 0; }

void check_shape(const Conv2dShape& s) {
  SIMCLR_CHECK(s.N >= 0 && s.H > 0 && s.W > 0 && s.C >= 0 && s.O >= 0 && s.kH > 0 && s.kW > 0 && s.stride > 0 &&
                   s.pad >= 0 && s.Ho() > 0 && s.Wo() > 0,
               "conv2d (cuDNN): invalid shape N=", s.N, " H=", s.H, " W=", s.W, " C=", s.C, " O=", s.O, " k=", s.kH,
               "x", s.kW, " stride ", s.stride, " pad ", s.pad);
}

template <class T>
void forward_impl(T* y, const T* x, const T* w, const Conv2dShape& s, cudaStream_t stream) {
  check_shape(s);
  const int64_t ny = s.N * s.Ho() * s.Wo() * s.O;
  if (ny == 0) return;
  if (s.C == 0) {  // an empty sum
    CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(ny) * sizeof(T), stream));
    return;
  }
  const Ctx c = make_ctx<T>(Dir::fprop, s);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(g_mu);
  cudnnHandle_t h = handle_for(device, c);
  CUDNN_CTX_CHECK(cudnnSetStream(h, stream), c);
  run(c, device, h, const_cast<T*>(x), const_cast<T*>(w), y, stream, sizeof(T));
}

template <class T>
void backward_impl(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s,
                   cudaStream_t stream) {
  check_shape(s);
  const int64_t nx = s.N * s.H * s.W * s.C, nw = s.O * s.K();
  if (empty_shape(s)) {  // no term in any sum: dx = 0 when it is written, nothing to add
    if (dx && !dx_accumulate && nx > 0)
      CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<size_t>(nx) * sizeof(T), stream));
    return;
  }
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(g_mu);
  if (dx) {
    const Ctx c = make_ctx<T>(Dir::dgrad, s);
    cudnnHandle_t h = handle_for(device, c);
    CUDNN_CTX_CHECK(cudnnSetStream(h, stream), c);
    if (dx_accumulate) {
      lib::StreamScratch tmp(static_cast<size_t>(nx) * sizeof(T), stream, device);
      run(c, device, h, tmp.get(), const_cast<T*>(w), const_cast<T*>(dy), stream, sizeof(T));
      lib::accumulate(dev(dx), dev(tmp.as<T>()), nx, stream);
    } else {
      run(c, device, h, dx, const_cast<T*>(w), const_cast<T*>(dy), stream, sizeof(T));
    }
  }
  if (dw) {
    const Ctx c = make_ctx<T>(Dir::wgrad, s);
    cudnnHandle_t h = handle_for(device, c);
    CUDNN_CTX_CHECK(cudnnSetStream(h, stream), c);
    lib::StreamScratch tmp(static_cast<size_t>(nw) * sizeof(T), stream, device);
    run(c, device, h, const_cast<T*>(x), tmp.get(), const_cast<T*>(dy), stream, sizeof(T));
    lib::accumulate(dev(dw), dev(tmp.as<T>()), nw, stream);
  }
}

#undef FE_CHECK
#undef CUDNN_CTX_CHECK

#else  // !SIMCLR_HAVE_CUDNN_FRONTEND

[[noreturn]] void no_frontend(const char* fn) {
  fail(fn, ": this build has no cuDNN path (built without the cuDNN frontend: run ./setup.sh, then configure "
           "CMake again)");
}
template <class T>
void forward_impl(T*, const T*, const T*, const Conv2dShape&, cudaStream_t) {
  no_frontend("conv2d_forward_cudnn");
}
template <class T>
void backward_impl(T*, bool, T*, const T*, const T*, const T*, const Conv2dShape&, cudaStream_t) {
  no_frontend("conv2d_backward_cudnn");
}

#endif  // SIMCLR_HAVE_CUDNN_FRONTEND

}  // namespace

bool conv2d_cudnn_available() {
#ifdef SIMCLR_HAVE_CUDNN_FRONTEND
  return true;
#else
  return false;
#endif
}

void conv2d_forward_cudnn(float* y, const float* x, const float* w, const Conv2dShape& s, cudaStream_t stream) {
  forward_impl(y, x, w, s, stream);
}
void conv2d_forward_cudnn(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w, const Conv2dShape& s,
                          cudaStream_t stream) {
  forward_impl(y, x, w, s, stream);
}
void conv2d_backward_cudnn(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x, const float* w,
                           const Conv2dShape& s, cudaStream_t stream) {
  backward_impl(dx, dx_accumulate, dw, dy, x, w, s, stream);
}
void conv2d_backward_cudnn(::simclr::bf16* dx, bool dx_accumulate, ::simclr::bf16* dw, const ::simclr::bf16* dy,
                           const ::simclr::bf16* x, const ::simclr::bf16* w, const Conv2dShape& s,
                           cudaStream_t stream) {
  backward_impl(dx, dx_accumulate, dw, dy, x, w, s, stream);
}

CudnnPlanCacheStats conv2d_cudnn_cache_stats() {
#ifdef SIMCLR_HAVE_CUDNN_FRONTEND
  std::lock_guard<std::mutex> lock(g_mu);
  const auto& c = plan_cache();
  return {c.hits(), c.misses(), c.size(), c.capacity()};
#else
  return {};
#endif
}

void conv2d_cudnn_cache_clear() {
#ifdef SIMCLR_HAVE_CUDNN_FRONTEND
  std::lock_guard<std::mutex> lock(g_mu);
  plan_cache().clear();
#endif
}

}  // namespace simclr::gpu

#endif  // SIMCLR_EMU
