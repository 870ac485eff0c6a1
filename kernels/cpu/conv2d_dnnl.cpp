// kernels/cpu/conv2d_dnnl.cpp - the fast CPU convolution of kernels/conv2d.h:
// oneDNN (Debian's libdnnl) for f32, as cuDNN is on the GPU. The im2col +
// GEMM code in kernels/cpu/conv2d.cpp stays the reference (and serves f64).
//
// Layouts: activations NHWC are oneDNN's "nhwc" tag (dims given as N,C,H,W),
// weights OHWI its "ohwi" tag (dims O,I,kH,kW). The weights format is left to
// oneDNN ("any", a blocked layout for its AVX2/AVX-512 kernels): our OHWI
// weights are reordered into it per call (at most 147k values at width 0.25,
// negligible), and the weight gradient is reordered back with a sum post-op,
// which is the += of the contract. oneDNN writes diff_src (=); with
// dx_accumulate it goes to a per-thread scratch buffer first and is added.
//
// Weight gradient of a strided 1x1 convolution without padding (the ResNet
// downsample shortcut): oneDNN 2.6's jit_1x1 backward-weights kernels
// "reduce to unit stride" by copying x[:, ::s, ::s, :] into a per-thread
// scratchpad slice of Ho·Wo·C values, but address the copy with the offsets
// of a blocked layout, pixel·ic_block. With an nhwc input of fewer channels
// than the register block (C < 8 on AVX2, C < 16 on AVX-512) each thread
// writes up to Ho·Wo·ic_block values: threads overwrite each other's slices
// (a wrong dw with 2+ threads) and the last one writes past the end of the
// scratchpad (heap corruption, "free(): invalid next size"). We never let
// oneDNN see such a problem: dw of a 1x1 stride-s convolution without padding
// is dw of the stride-1 convolution of the subsampled input xs[N,Ho,Wo,C] =
// x[n, ho*s, wo*s, c], which we gather ourselves into thread scratch
// (forward and backward-data have no such defect and keep oneDNN's path;
// tests/test_conv_dnnl.cpp holds the shapes).
//
// One cache entry per shape and thread count holds the primitive descriptors
// and primitives (creating them costs far more than a small convolution);
// entries are never mutated after construction, so concurrent calls (thread
// ranks) only share read-only state. Scratchpads are user-managed and per
// calling thread, as oneDNN requires for concurrent execution of one primitive.
// Threads: oneDNN's OpenMP runtime, omp_get_max_threads() of the caller.
//
// bf16 (train.precision bf16 on the CPU): the same primitives with bf16
// activations and weights, fp32 accumulation inside oneDNN (its
// avx512_core_bf16 / amx kernels on CPUs with AVX512-BF16 or AMX), the weight
// gradient produced in f32 and added into the bf16 dw by the reorder's sum
// (one rounding). Only oneDNN's optimised kernels are taken for bf16: where it
// would run its reference implementation (a CPU without those instructions),
// the shape counts as unsupported and the op widens to f32 instead
// (kernels/cpu/conv2d.cpp).
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/check.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/acc.h"

#ifdef SIMCLR_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace simclr::cpu {

#ifdef SIMCLR_WITH_DNNL

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

struct ConvPrims {
  dt data = dt::f32;                   // activations and weights: f32 or bf16
  memory::desc x_md, y_md, w_user_md;  // nhwc, nhwc, ohwi
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  dnnl::reorder::primitive_desc w_to_fwd_pd;  // only when fwd_pd.weights_desc() != w_user_md
  dnnl::reorder w_to_fwd;
  bool fwd_reorder = false;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::reorder::primitive_desc w_to_bwd_data_pd;
  dnnl::reorder w_to_bwd_data;
  bool bwd_data_reorder = false;
  bool dw_subsample = false;  // strided 1x1, no padding: dw from xs (see the note above)
  memory::desc xs_md;         // nhwc [N, C, Ho, Wo] when dw_subsample
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd;
  dnnl::convolution_backward_weights bwd_w;
  dnnl::reorder::primitive_desc dw_accumulate_pd;  // diff_weights (oneDNN layout) -> ohwi with sum: dw += ...
  dnnl::reorder dw_accumulate;
};

// The shape and the thread count: a primitive descriptor sizes its per-thread
// scratchpad and work split for omp_get_max_threads() at creation, so (as in
// oneDNN's own primitive cache) one built for 1 thread is not run by 2.
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int>;

// oneDNN's reference implementations are correct but far slower than our own
// paths; for bf16 they are not taken.
void require_optimised(const dnnl::primitive_desc_base& pd) {
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference implementation");
}

std::shared_ptr<const ConvPrims> build(const Conv2dShape& s, dt data) {
  auto& eng = cpu_engine();
  auto p = std::make_shared<ConvPrims>();
  p->data = data;
  const memory::dims x_dims{s.N, s.C, s.H, s.W}, y_dims{s.N, s.O, s.Ho(), s.Wo()}, w_dims{s.O, s.C, s.kH, s.kW};
  const memory::dims strides{s.stride, s.stride}, pad{s.pad, s.pad};
  p->x_md = memory::desc(x_dims, data, tag::nhwc);
  p->y_md = memory::desc(y_dims, data, tag::nhwc);
  p->w_user_md = memory::desc(w_dims, data, tag::ohwi);
  const memory::desc w_any(w_dims, data, tag::any);
  const memory::desc dw_any(w_dims, dt::f32, tag::any);  // the weight gradient in f32, also for bf16
  const bool bf = data == dt::bf16;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                     p->x_md, w_any, p->y_md, strides, pad, pad);
  p->fwd_pd = dnnl::convolution_forward::primitive_desc(fd, attr, eng);
  if (bf) require_optimised(p->fwd_pd);
  p->fwd = dnnl::convolution_forward(p->fwd_pd);
  p->fwd_reorder = p->fwd_pd.weights_desc() != p->w_user_md;
  if (p->fwd_reorder) {
    p->w_to_fwd_pd = dnnl::reorder::primitive_desc(eng, p->w_user_md, eng, p->fwd_pd.weights_desc(), attr);
    p->w_to_fwd = dnnl::reorder(p->w_to_fwd_pd);
  }

  dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct, p->x_md, w_any, p->y_md, strides,
                                           pad, pad);
  p->bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(bd, attr, eng, p->fwd_pd);
  if (bf) require_optimised(p->bwd_data_pd);
  p->bwd_data = dnnl::convolution_backward_data(p->bwd_data_pd);
  p->bwd_data_reorder = p->bwd_data_pd.weights_desc() != p->w_user_md;
  if (p->bwd_data_reorder) {
    p->w_to_bwd_data_pd = dnnl::reorder::primitive_desc(eng, p->w_user_md, eng, p->bwd_data_pd.weights_desc(), attr);
    p->w_to_bwd_data = dnnl::reorder(p->w_to_bwd_data_pd);
  }

  p->dw_subsample = s.kH == 1 && s.kW == 1 && s.pad == 0 && s.stride > 1;
  if (p->dw_subsample) {
    p->xs_md = memory::desc({s.N, s.C, s.Ho(), s.Wo()}, data, tag::nhwc);
    const memory::dims one{1, 1}, zero{0, 0};
    dnnl::convolution_forward::desc hd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                       p->xs_md, w_any, p->y_md, one, zero, zero);
    const dnnl::convolution_forward::primitive_desc hint(hd, attr, eng);
    dnnl::convolution_backward_weights::desc wd(dnnl::algorithm::convolution_direct, p->xs_md, dw_any, p->y_md, one,
                                                zero, zero);
    p->bwd_w_pd = dnnl::convolution_backward_weights::primitive_desc(wd, attr, eng, hint);
  } else {
    dnnl::convolution_backward_weights::desc wd(dnnl::algorithm::convolution_direct, p->x_md, dw_any, p->y_md,
                                                strides, pad, pad);
    p->bwd_w_pd = dnnl::convolution_backward_weights::primitive_desc(wd, attr, eng, p->fwd_pd);
  }
  if (bf) require_optimised(p->bwd_w_pd);
  p->bwd_w = dnnl::convolution_backward_weights(p->bwd_w_pd);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr acc_attr;
  acc_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  acc_attr.set_post_ops(sum);
  p->dw_accumulate_pd = dnnl::reorder::primitive_desc(eng, p->bwd_w_pd.diff_weights_desc(), eng, p->w_user_md, acc_attr);
  p->dw_accumulate = dnnl::reorder(p->dw_accumulate_pd);
  return p;
}

// The cache entry for s; null when oneDNN has no implementation for it (the
// op then runs the reference). A failed build is cached too.
const ConvPrims* find_prims(const Conv2dShape& s, dt data = dt::f32) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<const ConvPrims>> cache;
  const Key k{s.N, s.H, s.W, s.C, s.O, s.kH, s.kW, s.stride, s.pad, omp_get_max_threads(), static_cast<int>(data)};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it == cache.end()) {
    std::shared_ptr<const ConvPrims> p;
    try {
      p = build(s, data);
    } catch (const dnnl::error&) {
      p = nullptr;
    }
    it = cache.emplace(k, std::move(p)).first;
  }
  return it->second.get();  // entries live as long as the process
}

const ConvPrims& prims_for(const Conv2dShape& s, dt data = dt::f32) {
  const ConvPrims* p = find_prims(s, data);
  SIMCLR_CHECK(p != nullptr, "conv2d (oneDNN): no implementation for input [", s.N, ", ", s.H, ", ", s.W, ", ", s.C,
               "], weight [", s.O, ", ", s.kH, ", ", s.kW, ", ", s.C, "], stride ", s.stride, ", padding ", s.pad,
               " (callers check conv2d_fast_supports first)");
  return *p;
}

// Per-thread growable scratch (bytes), reused across calls.
struct Scratch {
  std::vector<char> buf;
  void* get(size_t bytes) {
    if (buf.size() < bytes) buf.assign(bytes, 0);
    return buf.data();
  }
};
thread_local Scratch t_pad, t_weights, t_dx, t_xs;

// xs[n,ho,wo,:] = x[n, ho*s, wo*s, :] for a 1x1 convolution without padding.
template <class T>
const T* subsample(const T* x, const Conv2dShape& s) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), C = s.C;
  T* xs = static_cast<T*>(t_xs.get(static_cast<size_t>(s.N * Ho * Wo * C) * sizeof(T)));
#pragma omp parallel for if (s.N * Ho * Wo * C > 65536)
  for (int64_t r = 0; r < s.N * Ho; r++) {
    const int64_t n = r / Ho, ho = r % Ho;
    const T* src = x + ((n * s.H + ho * s.stride) * s.W) * C;
    T* dst = xs + r * Wo * C;
    for (int64_t wo = 0; wo < Wo; wo++) std::memcpy(dst + wo * C, src + wo * s.stride * C, C * sizeof(T));
  }
  return xs;
}

// Every scratchpad is followed by kCanary bytes of a known value, checked after
// the execution: an implementation writing past the size it asked for (as the
// defect described at the top did) is a clear error, not silent heap corruption.
constexpr size_t kCanary = 4096;
constexpr unsigned char kCanaryByte = 0xA5;

void run(const dnnl::primitive& prim, std::unordered_map<int, memory> args, const dnnl::primitive_desc_base& pd) {
  const size_t sb = pd.scratchpad_desc().get_size();
  unsigned char* pad = nullptr;
  if (sb) {
    pad = static_cast<unsigned char*>(t_pad.get(sb + kCanary));
    std::memset(pad + sb, kCanaryByte, kCanary);
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(pd.scratchpad_desc(), cpu_engine(), pad));
  }
  dnnl::stream st(cpu_engine());
  prim.execute(st, args);
  st.wait();
  for (size_t i = 0; pad && i < kCanary; i++)
    if (pad[sb + i] != kCanaryByte)
      fail("conv2d (oneDNN ", pd.impl_info_str(), "): the implementation wrote past the end of its ", sb,
           "-byte scratchpad (a oneDNN defect; SIMCLR_CPU_CONV=reference runs the im2col reference instead)");
}

// The weights in layout md: the user's OHWI buffer itself, or a reorder of it into thread scratch.
template <class T>
memory weights_as(const T* w, const ConvPrims& p, bool reorder, const dnnl::reorder& r,
                  const dnnl::reorder::primitive_desc& rpd, const memory::desc& md) {
  memory user(p.w_user_md, cpu_engine(), const_cast<T*>(w));
  if (!reorder) return user;
  memory m(md, cpu_engine(), t_weights.get(md.get_size()));
  run(r, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, m}}, rpd);
  return m;
}

}  // namespace

bool conv2d_fast_available() {
  static const bool on = [] {
    const char* e = std::getenv("SIMCLR_CPU_CONV");
    return !(e && std::strcmp(e, "reference") == 0);
  }();
  return on;
}

bool conv2d_fast_supports(const Conv2dShape& s, DType dtype) {
  return find_prims(s, dtype == DType::bf16 ? dt::bf16 : dt::f32) != nullptr;
}

bool conv2d_fast_bf16_here() {
  const Conv2dShape probe{8, 8, 8, 16, 16, 3, 3, 1, 1};
  return conv2d_fast_available() && conv2d_fast_supports(probe, DType::bf16);
}

namespace {
template <class T>
constexpr dt dt_of = std::is_same_v<T, bf16> ? dt::bf16 : dt::f32;

template <class T>
void forward_fast(T* y, const T* x, const T* w, const Conv2dShape& s) {
  const ConvPrims& p = prims_for(s, dt_of<T>);
  auto& eng = cpu_engine();
  memory wm = weights_as(w, p, p.fwd_reorder, p.w_to_fwd, p.w_to_fwd_pd, p.fwd_pd.weights_desc());
  run(p.fwd,
      {{DNNL_ARG_SRC, memory(p.x_md, eng, const_cast<T*>(x))},
       {DNNL_ARG_WEIGHTS, wm},
       {DNNL_ARG_DST, memory(p.y_md, eng, y)}},
      p.fwd_pd);
}

template <class T>
void backward_fast(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s) {
  if (!dx && !dw) return;
  const ConvPrims& p = prims_for(s, dt_of<T>);
  auto& eng = cpu_engine();
  memory dym(p.y_md, eng, const_cast<T*>(dy));
  if (dw) {
    const memory::desc& dmd = p.bwd_w_pd.diff_weights_desc();
    memory dwm(dmd, eng, t_weights.get(dmd.get_size()));
    memory src = p.dw_subsample ? memory(p.xs_md, eng, const_cast<T*>(subsample(x, s)))
                                : memory(p.x_md, eng, const_cast<T*>(x));
    run(p.bwd_w, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, dwm}}, p.bwd_w_pd);
    run(p.dw_accumulate, {{DNNL_ARG_FROM, dwm}, {DNNL_ARG_TO, memory(p.w_user_md, eng, dw)}},
        p.dw_accumulate_pd);
  }
  if (dx) {
    memory wm = weights_as(w, p, p.bwd_data_reorder, p.w_to_bwd_data, p.w_to_bwd_data_pd, p.bwd_data_pd.weights_desc());
    const int64_t n = s.N * s.H * s.W * s.C;
    T* out = dx_accumulate ? static_cast<T*>(t_dx.get(static_cast<size_t>(n) * sizeof(T))) : dx;
    run(p.bwd_data, {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, memory(p.x_md, eng, out)}},
        p.bwd_data_pd);
    if (dx_accumulate) {
      if constexpr (std::is_same_v<T, bf16>) {
#pragma omp parallel for simd if (n > 65536)
        for (int64_t i = 0; i < n; i++) dx[i] = st<bf16>(ld(dx[i]) + ld(out[i]));
      } else {
#pragma omp parallel for simd if (n > 65536)
        for (int64_t i = 0; i < n; i++) dx[i] += out[i];
      }
    }
  }
}
}  // namespace

void conv2d_forward_fast(float* y, const float* x, const float* w, const Conv2dShape& s) { forward_fast(y, x, w, s); }
void conv2d_forward_fast(bf16* y, const bf16* x, const bf16* w, const Conv2dShape& s) { forward_fast(y, x, w, s); }

void conv2d_backward_fast(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x, const float* w,
                          const Conv2dShape& s) {
  backward_fast(dx, dx_accumulate, dw, dy, x, w, s);
}
void conv2d_backward_fast(bf16* dx, bool dx_accumulate, bf16* dw, const bf16* dy, const bf16* x, const bf16* w,
                          const Conv2dShape& s) {
  backward_fast(dx, dx_accumulate, dw, dy, x, w, s);
}

std::string conv2d_fast_info(const Conv2dShape& s, DType dtype) {
  if (!conv2d_fast_supports(s, dtype))
    return dtype == DType::bf16 ? "f32 fallback (oneDNN has no optimised bf16 implementation for this shape here)"
                                : "reference (oneDNN has no implementation for this shape)";
  const ConvPrims& p = prims_for(s, dtype == DType::bf16 ? dt::bf16 : dt::f32);
  return std::string("fwd ") + p.fwd_pd.impl_info_str() + ", bwd_data " + p.bwd_data_pd.impl_info_str() +
         ", bwd_weights " + p.bwd_w_pd.impl_info_str() + (p.dw_subsample ? " (on the subsampled input)" : "");
}

#else  // no oneDNN: the reference serves every call

bool conv2d_fast_available() { return false; }
bool conv2d_fast_supports(const Conv2dShape&, DType) { return false; }
bool conv2d_fast_bf16_here() { return false; }
void conv2d_forward_fast(float*, const float*, const float*, const Conv2dShape&) {
  fail("conv2d: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
void conv2d_forward_fast(bf16*, const bf16*, const bf16*, const Conv2dShape&) {
  fail("conv2d: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
void conv2d_backward_fast(float*, bool, float*, const float*, const float*, const float*, const Conv2dShape&) {
  fail("conv2d: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
void conv2d_backward_fast(bf16*, bool, bf16*, const bf16*, const bf16*, const bf16*, const Conv2dShape&) {
  fail("conv2d: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
std::string conv2d_fast_info(const Conv2dShape&, DType) { return "reference (no oneDNN in this build)"; }

#endif

}  // namespace simclr::cpu
