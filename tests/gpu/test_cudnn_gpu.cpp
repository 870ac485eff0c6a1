// tests/gpu/test_cudnn_gpu.cpp - the CUDA backend's library paths on a real
// GPU: conv2d through cuDNN's graph API (kernels/cuda/conv2d_cudnn.cu) and
// linear through cuBLASLt (kernels/cuda/linear_cublaslt.cu), called directly
// on guarded, NaN-poisoned device buffers (tests/guarded.h) and compared with
// the float64 CPU reference (kernels/cpu) over the same (rounded) inputs:
// ResNet shapes (7x7/2 stem, 3x3, 3x3/2, 1x1/2 shortcut, 1x1) and odd ones,
// f32 and bf16, "=" and "+=" outputs and null outputs; the plan caches; the
// deterministic mode; and that strict fp32 never rounds operands to TF32.
// Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device, and
// for the convolutions also when the build has no cuDNN frontend.
//
// Tolerances (per element, with S = the same sum over |operands|, computed
// by the reference on absolute values, and K the length of the element's sum):
//   accumulation in fp32 in any order and grouping loses at most
//   (K-1)·2^-24·S; we allow K·2^-23·S (twice that: accumulators that round
//   toward zero, as tensor-core adders may);
//   the output's rounding to T (unit roundoff u = 2^-24 for f32, 2^-8 for
//   bf16): 2u·(|ref| + |init|), where init is what a "+=" output held before:
//   the library writes a temporary that is rounded (u·|tmp|, |tmp| <= |ref| +
//   |init|), then adds it and rounds again (u·|ref|).
// A wrong index, padding or stride moves elements by O(|y|), far beyond these.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "tests/guarded.h"
#include "tests/skip.h"

using namespace simclr;
using simclr::test::Guarded;

namespace {

#define SKIP_WITHOUT_CUDNN()                                                                                   \
  do {                                                                                                         \
    SKIP_WITHOUT_GPU();                                                                                        \
    if (!gpu::conv2d_cudnn_available())                                                                        \
      SIMCLR_SKIP("built without the cuDNN frontend (setup.sh installs it into .deps/cudnn_frontend)");       \
  } while (0)

// Restores the library settings when a test leaves.
struct SettingsGuard {
  CudaMath math = cuda_math();
  bool deterministic = cuda_deterministic();
  ~SettingsGuard() {
    set_cuda_math(math);
    set_cuda_deterministic(deterministic);
  }
};

cudaStream_t engine_stream() { return static_cast<cudaStream_t>(cuda_current_stream(0)); }

template <class T>
const char* tname() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

// n values uniform in [-1, 1), exactly representable in T.
template <class T>
std::vector<T> random_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(rng));
  return v;
}

template <class T>
std::vector<double> f64(const std::vector<T>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); i++) d[i] = static_cast<double>(static_cast<float>(v[i]));
  return d;
}

std::vector<double> absolute(std::vector<double> v) {
  for (auto& x : v) x = std::abs(x);
  return v;
}

// got ≈ ref within the header's tolerance; init: the "+=" output's value
// before the call (nullptr for "="); K: each element's sum length.
template <class T>
void expect_close(const std::string& what, const std::vector<T>& got, const std::vector<double>& ref,
                  const std::vector<double>& mag, const std::vector<double>* init, int64_t K) {
  REQUIRE(got.size() == ref.size());
  REQUIRE(mag.size() == ref.size());
  const double coef = std::ldexp(static_cast<double>(std::max<int64_t>(K, 1)), -23);
  const double rel = std::is_same_v<T, float> ? std::ldexp(1.0, -23) : std::ldexp(1.0, -7);
  int64_t bad = 0;
  double worst = 0, worst_err = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double g = static_cast<double>(static_cast<float>(got[i]));
    const double tol = rel * (std::abs(ref[i]) + (init ? std::abs((*init)[i]) : 0.0)) + coef * mag[i] + 1e-30;
    const double err = std::abs(g - ref[i]);
    if (!(err <= tol)) ++bad;
    const double r = std::isfinite(err) ? err / tol : 1e300;
    if (r > worst) {
      worst = r;
      worst_err = err;
      worst_i = i;
    }
  }
  std::printf("%s: %lld of %zu outside tolerance (worst: element %zu, error %.3g = %.3g x tolerance)\n",
              what.c_str(), static_cast<long long>(bad), got.size(), worst_i, worst_err, worst);
  INFO(what);
  CHECK(bad == 0);
}

// ------------------------------------------------------------------ conv2d

std::string conv_name(const Conv2dShape& s) {
  return detail::cat("N", s.N, " ", s.H, "x", s.W, "x", s.C, " -> O", s.O, " k", s.kH, "x", s.kW, "/", s.stride, " p",
                     s.pad);
}

const std::vector<Conv2dShape>& conv_shapes() {
  static const std::vector<Conv2dShape> shapes{
      {2, 64, 64, 3, 64, 7, 7, 2, 3},     // ResNet stem: 7x7 stride 2, 3 input channels
      {2, 16, 16, 64, 64, 3, 3, 1, 1},    // basic block 3x3
      {2, 16, 16, 64, 128, 3, 3, 2, 1},   // downsampling 3x3 stride 2
      {2, 16, 16, 64, 128, 1, 1, 2, 0},   // projection shortcut 1x1 stride 2
      {2, 8, 8, 256, 64, 1, 1, 1, 0},     // bottleneck 1x1 reduce
      {3, 9, 9, 5, 7, 3, 3, 1, 1},        // odd channels and sizes
      {1, 10, 11, 3, 5, 3, 3, 2, 1},      // stride 2 that does not divide: Ho=5, Wo=6
  };
  return shapes;
}

// The float64 reference of every direction, and the sums over |operands|.
struct ConvRef {
  std::vector<double> y, ymag, dx, dxmag, dw, dwmag;
};
ConvRef conv_reference(const Conv2dShape& s, const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& dy) {
  ConvRef r;
  const size_t ny = static_cast<size_t>(s.N * s.Ho() * s.Wo() * s.O), nx = x.size(), nw = w.size();
  r.y.assign(ny, 0);
  r.ymag.assign(ny, 0);
  r.dx.assign(nx, 0);
  r.dxmag.assign(nx, 0);
  r.dw.assign(nw, 0);
  r.dwmag.assign(nw, 0);
  const std::vector<double> ax = absolute(x), aw = absolute(w), ady = absolute(dy);
  cpu::conv2d_forward<double>(r.y.data(), x.data(), w.data(), s);
  cpu::conv2d_forward<double>(r.ymag.data(), ax.data(), aw.data(), s);
  cpu::conv2d_backward<double>(r.dx.data(), r.dw.data(), dy.data(), x.data(), w.data(), s);
  cpu::conv2d_backward<double>(r.dxmag.data(), r.dwmag.data(), ady.data(), ax.data(), aw.data(), s);
  return r;
}

template <class T>
void conv_case(const Conv2dShape& s, uint64_t seed) {
  const Device dev = Device::cuda(0);
  const cudaStream_t st = engine_stream();
  const size_t nx = static_cast<size_t>(s.N * s.H * s.W * s.C), nw = static_cast<size_t>(s.O * s.K()),
               ny = static_cast<size_t>(s.N * s.Ho() * s.Wo() * s.O);
  const std::vector<T> x = random_values<T>(nx, seed), w = random_values<T>(nw, seed + 1),
                       dy = random_values<T>(ny, seed + 2), dx0 = random_values<T>(nx, seed + 3),
                       dw0 = random_values<T>(nw, seed + 4);
  const ConvRef r = conv_reference(s, f64(x), f64(w), f64(dy));
  const std::string name = detail::cat("conv ", tname<T>(), " ", conv_name(s));
  const int64_t Kf = s.K(), Kd = s.O * s.kH * s.kW, Kw = s.N * s.Ho() * s.Wo();
  const std::vector<double> dx0d = f64(dx0), dw0d = f64(dw0);
  std::vector<double> dx_acc(nx), dw_acc(nw);
  for (size_t i = 0; i < nx; i++) dx_acc[i] = dx0d[i] + r.dx[i];
  for (size_t i = 0; i < nw; i++) dw_acc[i] = dw0d[i] + r.dw[i];

  const Guarded<T> xd(x, dev), wd(w, dev), dyd(dy, dev);
  {  // forward: y written over NaN poison
    const Guarded<T> y(ny, 0xFF, dev);
    gpu::conv2d_forward_cudnn(y.data(), xd.data(), wd.data(), s, st);
    expect_close(name + " forward", y.get(), r.y, r.ymag, nullptr, Kf);
    CHECK(y.guards_intact());
  }
  {  // backward: dx written (=) over poison, dw accumulated (+=)
    const Guarded<T> dx(nx, 0xFF, dev), dw(dw0, dev);
    gpu::conv2d_backward_cudnn(dx.data(), false, dw.data(), dyd.data(), xd.data(), wd.data(), s, st);
    expect_close(name + " dx (=)", dx.get(), r.dx, r.dxmag, nullptr, Kd);
    expect_close(name + " dw (+=)", dw.get(), dw_acc, r.dwmag, &dw0d, Kw);
    CHECK(dx.guards_intact());
    CHECK(dw.guards_intact());
  }
  {  // dx accumulated, no dw
    const Guarded<T> dx(dx0, dev);
    gpu::conv2d_backward_cudnn(dx.data(), true, nullptr, dyd.data(), xd.data(), wd.data(), s, st);
    expect_close(name + " dx (+=, dw null)", dx.get(), dx_acc, r.dxmag, &dx0d, Kd);
    CHECK(dx.guards_intact());
  }
  {  // dw only, x passed but w not needed
    const Guarded<T> dw(dw0, dev);
    gpu::conv2d_backward_cudnn(nullptr, false, dw.data(), dyd.data(), xd.data(), nullptr, s, st);
    expect_close(name + " dw (+=, dx null)", dw.get(), dw_acc, r.dwmag, &dw0d, Kw);
    CHECK(dw.guards_intact());
  }
  CHECK(xd.guards_intact());
  CHECK(wd.guards_intact());
  CHECK(dyd.guards_intact());
}

// ------------------------------------------------------------------ linear

struct LinearShape {
  int64_t N, I, O;
};

template <class T>
void linear_case(const LinearShape& sh, bool with_bias, uint64_t seed) {
  const Device dev = Device::cuda(0);
  const cudaStream_t st = engine_stream();
  const int64_t N = sh.N, I = sh.I, O = sh.O;
  const std::vector<T> x = random_values<T>(N * I, seed), w = random_values<T>(O * I, seed + 1),
                       b = random_values<T>(O, seed + 2), dy = random_values<T>(N * O, seed + 3),
                       dx0 = random_values<T>(N * I, seed + 4), dw0 = random_values<T>(O * I, seed + 5),
                       db0 = random_values<T>(O, seed + 6);
  const std::vector<double> xd64 = f64(x), wd64 = f64(w), bd64 = f64(b), dyd64 = f64(dy);
  const std::vector<double> ax = absolute(xd64), aw = absolute(wd64), ab = absolute(bd64), ady = absolute(dyd64);
  std::vector<double> y(N * O), ymag(N * O);
  cpu::linear_forward<double>(y.data(), xd64.data(), wd64.data(), with_bias ? bd64.data() : nullptr, N, I, O);
  cpu::linear_forward<double>(ymag.data(), ax.data(), aw.data(), with_bias ? ab.data() : nullptr, N, I, O);
  const std::vector<double> dx0d = f64(dx0), dw0d = f64(dw0), db0d = f64(db0);
  std::vector<double> dx = dx0d, dw = dw0d, db = db0d, dxmag(N * I, 0), dwmag(O * I, 0), dbmag(O, 0);
  cpu::linear_backward<double>(dx.data(), dw.data(), db.data(), dyd64.data(), xd64.data(), wd64.data(), N, I, O);
  cpu::linear_backward<double>(dxmag.data(), dwmag.data(), dbmag.data(), ady.data(), ax.data(), aw.data(), N, I, O);
  const std::string name =
      detail::cat("linear ", tname<T>(), " N", N, " I", I, " O", O, with_bias ? " +bias" : " no bias");

  const Guarded<T> xd(x, dev), wd(w, dev), bd(b, dev), dyd(dy, dev);
  {
    const Guarded<T> yd(N * O, 0xFF, dev);
    gpu::linear_forward_cublaslt(yd.data(), xd.data(), wd.data(), with_bias ? bd.data() : nullptr, N, I, O, st);
    expect_close(name + " forward", yd.get(), y, ymag, nullptr, I + 1);
    CHECK(yd.guards_intact());
  }
  {  // every gradient accumulates
    const Guarded<T> dxd(dx0, dev), dwd(dw0, dev), dbd(db0, dev);
    gpu::linear_backward_cublaslt(dxd.data(), dwd.data(), dbd.data(), dyd.data(), xd.data(), wd.data(), N, I, O, st);
    expect_close(name + " dx (+=)", dxd.get(), dx, dxmag, &dx0d, O);
    expect_close(name + " dw (+=)", dwd.get(), dw, dwmag, &dw0d, N);
    expect_close(name + " db (+=)", dbd.get(), db, dbmag, &db0d, N);
    CHECK(dxd.guards_intact());
    CHECK(dwd.guards_intact());
    CHECK(dbd.guards_intact());
  }
  {  // null outputs: dx only, then dw and db only
    const Guarded<T> dxd(dx0, dev), dwd(dw0, dev), dbd(db0, dev);
    gpu::linear_backward_cublaslt(dxd.data(), nullptr, nullptr, dyd.data(), xd.data(), wd.data(), N, I, O, st);
    gpu::linear_backward_cublaslt(nullptr, dwd.data(), dbd.data(), dyd.data(), xd.data(), nullptr, N, I, O, st);
    expect_close(name + " dx (+=, alone)", dxd.get(), dx, dxmag, &dx0d, O);
    expect_close(name + " dw (+=, with db)", dwd.get(), dw, dwmag, &dw0d, N);
    expect_close(name + " db (+=, with dw)", dbd.get(), db, dbmag, &db0d, N);
  }
}

const std::vector<LinearShape>& linear_shapes() {
  static const std::vector<LinearShape> shapes{
      {64, 128, 96},    // small aligned
      {33, 17, 5},      // odd everywhere (unaligned rows for bf16)
      {256, 2048, 128}, // projection head's last layer
      {128, 512, 2048}, // wide output
  };
  return shapes;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("cudnn gpu: conv2d f32 (strict fp32) against the float64 reference", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  SettingsGuard keep;
  set_cuda_math(CudaMath::fp32);
  uint64_t seed = 100;
  for (const Conv2dShape& s : conv_shapes()) conv_case<float>(s, seed += 10);
}

TEST_CASE("cudnn gpu: conv2d bf16 (fp32 compute) against the float64 reference", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  uint64_t seed = 200;
  for (const Conv2dShape& s : conv_shapes()) conv_case<bf16>(s, seed += 10);
}

TEST_CASE("cudnn gpu: conv2d f32 under CudaMath::tf32 runs and stays within TF32 accuracy", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  SettingsGuard keep;
  set_cuda_math(CudaMath::tf32);
  const Conv2dShape s{2, 16, 16, 64, 64, 3, 3, 1, 1};
  const size_t nx = s.N * s.H * s.W * s.C, nw = s.O * s.K(), ny = s.N * s.Ho() * s.Wo() * s.O;
  const std::vector<float> x = random_values<float>(nx, 7), w = random_values<float>(nw, 8);
  const ConvRef r = conv_reference(s, f64(x), f64(w), std::vector<double>(ny, 0.0));
  const Guarded<float> xd(x, Device::cuda(0)), wd(w, Device::cuda(0)), y(ny, 0xFF, Device::cuda(0));
  gpu::conv2d_forward_cudnn(y.data(), xd.data(), wd.data(), s, engine_stream());
  // TF32 rounds each operand to 11 significant bits (u = 2^-11): each
  // product is off by at most 2^-10 of |x w|, so 2^-10·S, plus the fp32
  // accumulation's K·2^-23·S, bounds the sum's error.
  const std::vector<float> got = y.get();
  const double coef = std::ldexp(1.0, -10) + std::ldexp(static_cast<double>(s.K()), -23);
  int64_t bad = 0;
  for (size_t i = 0; i < ny; i++)
    if (!(std::abs(got[i] - r.y[i]) <= coef * r.ymag[i] + 1e-30)) ++bad;
  CHECK(bad == 0);
}

TEST_CASE("cudnn gpu: strict fp32 does not round operands to TF32 (conv2d and linear)", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  SettingsGuard keep;
  set_cuda_math(CudaMath::fp32);
  // Every operand is 1 + 2^-12 (or 1): exact in fp32, 1 in TF32 (10 stored
  // mantissa bits). Each output is K·(1 + 2^-12) with K <= 144, and every
  // partial sum needs at most 21 significant bits, so fp32 gives it exactly
  // while TF32 gives K.
  const float v = 1.0f + std::ldexp(1.0f, -12);
  const Device dev = Device::cuda(0);
  const cudaStream_t st = engine_stream();
  const Conv2dShape s{1, 6, 6, 16, 8, 3, 3, 1, 0};  // no padding: every output sums K = 144 terms
  const size_t nx = s.N * s.H * s.W * s.C, nw = s.O * s.K(), ny = s.N * s.Ho() * s.Wo() * s.O;
  const Guarded<float> x(std::vector<float>(nx, v), dev), w(std::vector<float>(nw, 1.0f), dev),
      y(ny, 0xFF, dev), dy(std::vector<float>(ny, v), dev), dx(nx, 0xFF, dev), dw(nw, 0, dev);
  gpu::conv2d_forward_cudnn(y.data(), x.data(), w.data(), s, st);
  for (float g : y.get()) REQUIRE(g == 144.0f * v);
  // backward-filter: dw[o,kh,kw,c] = Σ over the 16 output pixels of dy·x = 16 v² ≈ 16 (1 + 2^-11)
  gpu::conv2d_backward_cudnn(dx.data(), false, dw.data(), dy.data(), x.data(), w.data(), s, st);
  const double dw_exact = 16.0 * static_cast<double>(v) * static_cast<double>(v);
  for (float g : dw.get()) REQUIRE(std::abs(g - dw_exact) < 16.0 * std::ldexp(1.0, -14));  // TF32: off by 16·2^-11
  // backward-data at the centre pixel (2,2) (covered by all 9 kernel taps): 9·O·v
  const std::vector<float> dxh = dx.get();
  for (int64_t c = 0; c < s.C; c++) REQUIRE(dxh[(2 * s.W + 2) * s.C + c] == 72.0f * v);

  const int64_t N = 8, I = 64, O = 16;
  const Guarded<float> lx(std::vector<float>(N * I, v), dev), lw(std::vector<float>(O * I, 1.0f), dev),
      ly(N * O, 0xFF, dev);
  gpu::linear_forward_cublaslt(ly.data(), lx.data(), lw.data(), nullptr, N, I, O, st);
  for (float g : ly.get()) REQUIRE(g == 64.0f * v);
}

TEST_CASE("cudnn gpu: linear through cuBLASLt against the float64 reference", "[gpu][cudnn][linear]") {
  SKIP_WITHOUT_GPU();
  SettingsGuard keep;
  set_cuda_math(CudaMath::fp32);
  uint64_t seed = 300;
  for (const LinearShape& sh : linear_shapes())
    for (bool bias : {true, false}) {
      linear_case<float>(sh, bias, seed += 10);
      linear_case<bf16>(sh, bias, seed += 10);
    }
}

TEST_CASE("cudnn gpu: a repeated shape reuses its plan (conv2d and linear caches)", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  const Device dev = Device::cuda(0);
  const cudaStream_t st = engine_stream();
  const Conv2dShape s{2, 8, 8, 16, 32, 3, 3, 1, 1}, s2{2, 8, 8, 16, 32, 3, 3, 2, 1};
  const Guarded<float> x(random_values<float>(s.N * s.H * s.W * s.C, 1), dev),
      w(random_values<float>(s.O * s.K(), 2), dev), y(s.N * s.Ho() * s.Wo() * s.O, 0, dev);
  gpu::conv2d_cudnn_cache_clear();
  CHECK(gpu::conv2d_cudnn_cache_stats().entries == 0);
  gpu::conv2d_forward_cudnn(y.data(), x.data(), w.data(), s, st);
  gpu::CudnnPlanCacheStats a = gpu::conv2d_cudnn_cache_stats();
  CHECK(a.misses == 1);
  CHECK(a.hits == 0);
  CHECK(a.entries == 1);
  CHECK(a.capacity == 256);
  gpu::conv2d_forward_cudnn(y.data(), x.data(), w.data(), s, st);
  a = gpu::conv2d_cudnn_cache_stats();
  CHECK(a.misses == 1);
  CHECK(a.hits == 1);
  gpu::conv2d_forward_cudnn(y.data(), x.data(), w.data(), s2, st);  // another stride: another plan
  a = gpu::conv2d_cudnn_cache_stats();
  CHECK(a.misses == 2);
  CHECK(a.entries == 2);

  const Guarded<float> ly(4 * 16, 0, dev);
  gpu::linear_cublaslt_cache_clear();
  gpu::linear_forward_cublaslt(ly.data(), x.data(), w.data(), nullptr, 4, 8, 16, st);
  gpu::linear_forward_cublaslt(ly.data(), x.data(), w.data(), nullptr, 4, 8, 16, st);
  const gpu::CublasLtCacheStats l = gpu::linear_cublaslt_cache_stats();
  CHECK(l.misses == 1);
  CHECK(l.hits == 1);
  CHECK(l.entries == 1);
}

TEST_CASE("cudnn gpu: the deterministic mode gives bit-identical dw twice", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  SettingsGuard keep;
  set_cuda_deterministic(true);
  const Device dev = Device::cuda(0);
  const cudaStream_t st = engine_stream();
  // A long backward-filter reduction (N·Ho·Wo = 6272 terms per element) over
  // few outputs: where split reductions with atomics would pay off.
  const Conv2dShape s{8, 28, 28, 32, 32, 3, 3, 1, 1};
  const Guarded<float> x(random_values<float>(s.N * s.H * s.W * s.C, 11), dev),
      dy(random_values<float>(s.N * s.Ho() * s.Wo() * s.O, 12), dev);
  const Guarded<float> dw1(s.O * s.K(), 0, dev), dw2(s.O * s.K(), 0, dev);
  gpu::conv2d_backward_cudnn(nullptr, false, dw1.data(), dy.data(), x.data(), nullptr, s, st);
  gpu::conv2d_backward_cudnn(nullptr, false, dw2.data(), dy.data(), x.data(), nullptr, s, st);
  CHECK(same_bits(dw1.get(), dw2.get()));
  const Guarded<bf16> xb(random_values<bf16>(s.N * s.H * s.W * s.C, 13), dev),
      dyb(random_values<bf16>(s.N * s.Ho() * s.Wo() * s.O, 14), dev);
  const Guarded<bf16> dwb1(s.O * s.K(), 0, dev), dwb2(s.O * s.K(), 0, dev);
  gpu::conv2d_backward_cudnn(nullptr, false, dwb1.data(), dyb.data(), xb.data(), nullptr, s, st);
  gpu::conv2d_backward_cudnn(nullptr, false, dwb2.data(), dyb.data(), xb.data(), nullptr, s, st);
  CHECK(same_bits(dwb1.get(), dwb2.get()));
  // linear's dw and db over a long batch
  const int64_t N = 4096, I = 256, O = 128;
  const Guarded<float> lx(random_values<float>(N * I, 15), dev), ldy(random_values<float>(N * O, 16), dev);
  const Guarded<float> ldw1(O * I, 0, dev), ldw2(O * I, 0, dev), ldb1(O, 0, dev), ldb2(O, 0, dev);
  gpu::linear_backward_cublaslt(nullptr, ldw1.data(), ldb1.data(), ldy.data(), lx.data(), nullptr, N, I, O, st);
  gpu::linear_backward_cublaslt(nullptr, ldw2.data(), ldb2.data(), ldy.data(), lx.data(), nullptr, N, I, O, st);
  CHECK(same_bits(ldw1.get(), ldw2.get()));
  CHECK(same_bits(ldb1.get(), ldb2.get()));
}

TEST_CASE("cudnn gpu: a shape without output is a clear error naming it", "[gpu][cudnn]") {
  SKIP_WITHOUT_CUDNN();
  const Conv2dShape bad{1, 2, 2, 3, 4, 5, 5, 1, 0};  // a 5x5 kernel on a 2x2 image: no output
  CHECK_THROWS_WITH(gpu::conv2d_forward_cudnn(static_cast<float*>(nullptr), nullptr, nullptr, bad, engine_stream()),
                    Catch::Contains("invalid shape") && Catch::Contains("H=2"));
}
