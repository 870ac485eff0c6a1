// tests/emu/test_conv_gemm_emu.cpp - our convolution and linear kernels
// (kernels/cuda/conv2d.cu, gemm.cu, gemm_tile.cuh) run by the kernel emulator,
// through the CUDA backend's table rows (emu::kernel_table(), what the ops
// call) and through the launchers (forced split-K), against the CPU backend's
// float64 rows (the im2col reference, kernels/cpu/conv2d.cpp, and
// kernels/cpu/elementwise.cpp) on the same rounded inputs.
//
// Tolerance (per element, with its reason): the kernels sum the K products of
// one output in a fixed sequence of fp32 FMAs (split-K: one sequence per chunk,
// then the chunk sums in order), then add the prior value (+=) and round once
// to T. The rounding-error bound of a recursive fp32 sum of n terms is
// γ_n · Σ|terms| with γ_n = n·u/(1 - n·u), u = 2^-24, so
//     |got - want| <= γ_n · (Σ_k |a_k b_k| + |prior| + |bias|) + u_T · |result|
// with n = K + splits + 2 and u_T the unit roundoff of the output type
// (fp32 2^-24; bf16 2^-8: 8 significant bits, round to nearest). Σ|a b| is
// computed by the reference on |inputs|. Inputs are rounded to T before either
// side sees them, so input rounding is not part of the error. The bound is a
// proven worst case, still 4-5 orders of magnitude below what a wrong index,
// a dropped tap or a missing tile would produce.
//
// Outputs written with = start as NaN (a missed element fails); outputs
// accumulated with += start at random values (the prior must be kept).
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "engine/check.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/registry.h"
#include "tests/emu/emu_row.h"

using namespace simclr;

namespace {

using test::emu_row;

template <class T>
double to_d(T v) {
  return static_cast<double>(static_cast<float>(v));
}

// Random values rounded to T, and the same values as doubles.
template <class T>
struct Buf {
  std::vector<T> t;
  std::vector<double> d, a;  // values, |values|
  Buf(size_t n, std::mt19937& rng, double scale = 1.0) : t(n), d(n), a(n) {
    std::normal_distribution<double> nd;
    for (size_t i = 0; i < n; i++) {
      t[i] = T(static_cast<float>(scale * nd(rng)));
      d[i] = to_d(t[i]);
      a[i] = std::abs(d[i]);
    }
  }
};

template <class T>
std::vector<T> nan_filled(size_t n) {
  return std::vector<T>(n, T(std::numeric_limits<float>::quiet_NaN()));
}

// got vs want = prior + g (prior may be empty: written with =), with the bound above.
template <class T>
void check_close(const char* what, const std::vector<T>& got, const std::vector<double>& g,
                 const std::vector<double>& gabs, const std::vector<double>* prior, int64_t terms) {
  INFO(what);
  REQUIRE(got.size() == g.size());
  const double u = std::ldexp(1.0, -24), n = static_cast<double>(terms);
  const double gamma = n * u / (1 - n * u);
  const double uT = std::is_same_v<T, float> ? u : std::ldexp(1.0, -8);
  double worst = 0, scale = 0;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double p = prior ? (*prior)[i] : 0.0;
    const double want = p + g[i];
    const double tol = gamma * (gabs[i] + std::abs(p)) + uT * (std::abs(want) + gamma * (gabs[i] + std::abs(p)));
    const double err = std::abs(to_d(got[i]) - want);
    scale = std::max(scale, std::abs(g[i]));
    if (!(err <= tol)) {  // NaN fails too
      if (bad++ == 0) first_bad = i;
    } else if (tol > 0) {
      worst = std::max(worst, err / tol);
    }
  }
  INFO("elements " << got.size() << ", max |gradient term| " << scale << ", worst err/tol " << worst);
  INFO("bad " << bad << ", first bad [" << first_bad << "] got " << (bad ? to_d(got[first_bad]) : 0.0) << " want "
              << (bad ? (prior ? (*prior)[first_bad] : 0.0) + g[first_bad] : 0.0));
  CHECK(bad == 0);
  CHECK(scale > 0);  // the comparison is not vacuous
}

struct ConvCase {
  int64_t N, H, W, C, O, kH, kW, stride, pad;
};

template <class T>
void check_conv(const ConvCase& c, int ksplit_forced) {
  const Conv2dShape s{c.N, c.H, c.W, c.C, c.O, c.kH, c.kW, c.stride, c.pad};
  INFO("conv N " << s.N << " " << s.H << "x" << s.W << "x" << s.C << " -> O " << s.O << " kernel " << s.kH << "x"
                 << s.kW << " stride " << s.stride << " pad " << s.pad << " " << dtype_name(dtype_of<T>::value));
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K(), P = s.N * Ho * Wo;
  const size_t nx = static_cast<size_t>(s.N * s.H * s.W * s.C), nw = static_cast<size_t>(s.O * K),
               ny = static_cast<size_t>(P * s.O);
  std::mt19937 rng(static_cast<uint32_t>(s.N * 1000003 + s.H * 1009 + s.C * 31 + s.O * 7 + s.kH + s.stride));
  Buf<T> x(nx, rng), w(nw, rng, 0.3), dy(ny, rng), dx0(nx, rng), dw0(nw, rng);

  const auto& ref = kernels_for<Conv2dKernels, double>(Device::cpu());
  std::vector<double> y_ref(ny), y_abs(ny), dx_ref(nx, 0.0), dx_abs(nx, 0.0), dw_ref(nw, 0.0), dw_abs(nw, 0.0);
  ref.forward(y_ref.data(), x.d.data(), w.d.data(), s);
  ref.forward(y_abs.data(), x.a.data(), w.a.data(), s);
  ref.backward(dx_ref.data(), true, dw_ref.data(), dy.d.data(), x.d.data(), w.d.data(), s);
  ref.backward(dx_abs.data(), true, dw_abs.data(), dy.a.data(), x.a.data(), w.a.data(), s);

  const auto& k = emu_row<Conv2dKernels, T>();
  const int auto_split = emu::conv2d_ours_resolve_ksplit(0, s);
  const int64_t fwd_terms = K + 2, dx_terms = s.kH * s.kW * s.O + 2, dw_terms = P + auto_split + 2;

  // forward (=) into NaN
  auto y = nan_filled<T>(ny);
  k.forward(y.data(), x.t.data(), w.t.data(), s);
  check_close("forward y", y, y_ref, y_abs, nullptr, fwd_terms);

  // backward: dx = (NaN prior), dw += (random prior)
  auto dx = nan_filled<T>(nx);
  std::vector<T> dw = dw0.t;
  k.backward(dx.data(), false, dw.data(), dy.t.data(), x.t.data(), w.t.data(), s);
  check_close("backward dx (=)", dx, dx_ref, dx_abs, nullptr, dx_terms);
  check_close("backward dw (+=)", dw, dw_ref, dw_abs, &dw0.d, dw_terms);

  // deterministic: the same bits again
  auto dx2 = nan_filled<T>(nx);
  std::vector<T> dw2 = dw0.t;
  k.backward(dx2.data(), false, dw2.data(), dy.t.data(), x.t.data(), w.t.data(), s);
  CHECK(std::memcmp(dx2.data(), dx.data(), nx * sizeof(T)) == 0);
  CHECK(std::memcmp(dw2.data(), dw.data(), nw * sizeof(T)) == 0);

  // dx += (random prior), dw null
  std::vector<T> dxa = dx0.t;
  k.backward(dxa.data(), true, nullptr, dy.t.data(), x.t.data(), w.t.data(), s);
  check_close("backward dx (+=), dw null", dxa, dx_ref, dx_abs, &dx0.d, dx_terms);

  // dx null, dw += ; x and w not needed for what is not computed
  std::vector<T> dwb = dw0.t;
  k.backward(nullptr, false, dwb.data(), dy.t.data(), x.t.data(), nullptr, s);
  CHECK(std::memcmp(dwb.data(), dw.data(), nw * sizeof(T)) == 0);  // same sums as with dx
  auto dxc = nan_filled<T>(nx);
  k.backward(dxc.data(), false, nullptr, dy.t.data(), nullptr, w.t.data(), s);
  CHECK(std::memcmp(dxc.data(), dx.data(), nx * sizeof(T)) == 0);
  k.backward(nullptr, false, nullptr, nullptr, nullptr, nullptr, s);  // nothing wanted: nothing read

  // the launcher with a forced split of the sum over pixels
  if (ksplit_forced > 0) {
    const int splits = emu::conv2d_ours_resolve_ksplit(ksplit_forced, s);
    CHECK(splits == ksplit_forced);
    std::vector<T> dws = dw0.t;
    emu::conv2d_backward_ours(nullptr, false, dws.data(), dy.t.data(), x.t.data(), nullptr, s, ksplit_forced, nullptr);
    check_close("backward dw (+=), forced split-K", dws, dw_ref, dw_abs, &dw0.d, P + splits + 2);
    std::vector<T> dws2 = dw0.t;
    emu::conv2d_backward_ours(nullptr, false, dws2.data(), dy.t.data(), x.t.data(), nullptr, s, ksplit_forced,
                              nullptr);
    CHECK(std::memcmp(dws2.data(), dws.data(), nw * sizeof(T)) == 0);
  }
}

struct LinCase {
  int64_t N, I, O;
};

template <class T>
void check_linear(const LinCase& c, bool bias, int ksplit_forced) {
  const int64_t N = c.N, I = c.I, O = c.O;
  INFO("linear N " << N << " I " << I << " O " << O << (bias ? " bias" : " no bias") << " "
                   << dtype_name(dtype_of<T>::value));
  std::mt19937 rng(static_cast<uint32_t>(N * 7919 + I * 31 + O + (bias ? 1 : 0)));
  const size_t nx = static_cast<size_t>(N * I), nw = static_cast<size_t>(O * I), ny = static_cast<size_t>(N * O);
  Buf<T> x(nx, rng), w(nw, rng, 0.2), b(static_cast<size_t>(O), rng), dy(ny, rng), dx0(nx, rng), dw0(nw, rng),
      db0(static_cast<size_t>(O), rng);

  const auto& ref = kernels_for<LinearKernels, double>(Device::cpu());
  std::vector<double> y_ref(ny), y_abs(ny), dx_ref(nx, 0.0), dx_abs(nx, 0.0), dw_ref(nw, 0.0), dw_abs(nw, 0.0),
      db_ref(O, 0.0), db_abs(O, 0.0);
  ref.forward(y_ref.data(), x.d.data(), w.d.data(), bias ? b.d.data() : nullptr, N, I, O);
  ref.forward(y_abs.data(), x.a.data(), w.a.data(), bias ? b.a.data() : nullptr, N, I, O);
  ref.backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.d.data(), x.d.data(), w.d.data(), N, I, O);
  ref.backward(dx_abs.data(), dw_abs.data(), db_abs.data(), dy.a.data(), x.a.data(), w.a.data(), N, I, O);

  const auto& k = emu_row<LinearKernels, T>();
  const int auto_split = emu::linear_ours_resolve_ksplit(0, N, I, O);
  auto y = nan_filled<T>(ny);
  k.forward(y.data(), x.t.data(), w.t.data(), bias ? b.t.data() : nullptr, N, I, O);
  check_close("forward y", y, y_ref, y_abs, nullptr, I + 2);

  if (bias) {  // the full backward, all three += onto random priors
    std::vector<T> dx = dx0.t, dw = dw0.t, db = db0.t;
    k.backward(dx.data(), dw.data(), db.data(), dy.t.data(), x.t.data(), w.t.data(), N, I, O);
    check_close("backward dx (+=)", dx, dx_ref, dx_abs, &dx0.d, O + 2);
    check_close("backward dw (+=)", dw, dw_ref, dw_abs, &dw0.d, N + auto_split + 2);
    check_close("backward db (+=)", db, db_ref, db_abs, &db0.d, N + 2);
    std::vector<T> dx2 = dx0.t, dw2 = dw0.t, db2 = db0.t;  // deterministic
    k.backward(dx2.data(), dw2.data(), db2.data(), dy.t.data(), x.t.data(), w.t.data(), N, I, O);
    CHECK(std::memcmp(dx2.data(), dx.data(), nx * sizeof(T)) == 0);
    CHECK(std::memcmp(dw2.data(), dw.data(), nw * sizeof(T)) == 0);
    CHECK(std::memcmp(db2.data(), db.data(), O * sizeof(T)) == 0);
  } else {  // one output at a time, the others null (and the operands they alone need null too)
    std::vector<T> dx = dx0.t, dw = dw0.t;
    k.backward(dx.data(), nullptr, nullptr, dy.t.data(), nullptr, w.t.data(), N, I, O);
    check_close("backward dx only", dx, dx_ref, dx_abs, &dx0.d, O + 2);
    k.backward(nullptr, dw.data(), nullptr, dy.t.data(), x.t.data(), nullptr, N, I, O);
    check_close("backward dw only", dw, dw_ref, dw_abs, &dw0.d, N + auto_split + 2);
    std::vector<T> db = db0.t;
    k.backward(nullptr, nullptr, db.data(), dy.t.data(), nullptr, nullptr, N, I, O);
    check_close("backward db only", db, db_ref, db_abs, &db0.d, N + 2);
  }
  if (ksplit_forced > 0) {
    const int splits = emu::linear_ours_resolve_ksplit(ksplit_forced, N, I, O);
    CHECK(splits == ksplit_forced);
    std::vector<T> dw = dw0.t;
    emu::linear_backward_ours(nullptr, dw.data(), nullptr, dy.t.data(), x.t.data(), nullptr, N, I, O, ksplit_forced,
                              nullptr);
    check_close("backward dw, forced split-K", dw, dw_ref, dw_abs, &dw0.d, N + splits + 2);
  }
}

}  // namespace

TEST_CASE("emu conv2d (ours): implicit-GEMM forward, data and filter gradients vs the CPU float64 row",
          "[emu][conv]") {
  // {N, H, W, C, O, kH, kW, stride, pad}
  const ConvCase cases[] = {
      {2, 5, 6, 3, 13, 3, 3, 1, 1},   // 3x3 pad 1 stride 1, C = 3 (a stem-like input), K = 27
      {2, 7, 6, 13, 3, 3, 3, 2, 1},   // 3x3 pad 1 stride 2, odd sizes, K = 117 (eight K steps of 16, the last partial)
      {2, 4, 5, 13, 13, 1, 1, 1, 0},  // 1x1 stride 1 (pointwise)
      {2, 7, 5, 13, 8, 1, 1, 2, 0},   // 1x1 stride 2: the ResNet downsample shortcut
      {1, 9, 11, 3, 8, 7, 7, 2, 3},   // 7x7/2 pad 3: the ImageNet stem, batch 1
      {1, 8, 7, 5, 6, 5, 3, 1, 2},    // 5x3 kernel, pad 2: Ho != Wo arithmetic
  };
  for (const auto& c : cases) check_conv<float>(c, 0);
  // beyond one 64x64 tile: P = 90 output pixels, O = 70 channels, K = 27 (wgrad N' = 27, dgrad M = 90);
  // and the sum over pixels cut into 3 forced chunks
  check_conv<float>({1, 10, 9, 3, 70, 3, 3, 1, 1}, 3);
  check_conv<float>({1, 9, 9, 13, 66, 1, 1, 1, 0}, 0);  // 1x1 with O = 66: a second N tile of 2 columns

  check_conv<bf16>(cases[0], 0);
  check_conv<bf16>(cases[1], 0);
  check_conv<bf16>(cases[3], 0);
  check_conv<bf16>(cases[4], 0);
  check_conv<bf16>({1, 10, 9, 3, 70, 3, 3, 1, 1}, 3);
}

TEST_CASE("emu conv2d (ours): split-K choice, guards", "[emu][conv]") {
  // automatic split: a function of the shape; 1 where tiles are many or the pixel sum short
  CHECK(emu::conv2d_ours_resolve_ksplit(0, Conv2dShape{2, 5, 6, 3, 13, 3, 3, 1, 1}) == 1);
  CHECK(emu::conv2d_ours_resolve_ksplit(0, Conv2dShape{16, 32, 32, 8, 8, 3, 3, 1, 1}) > 1);  // P = 16384, 2 tiles
  CHECK(emu::conv2d_ours_resolve_ksplit(0, Conv2dShape{256, 56, 56, 64, 256, 1, 1, 1, 0}) > 1);
  CHECK(emu::conv2d_ours_resolve_ksplit(0, Conv2dShape{256, 7, 7, 512, 512, 3, 3, 1, 1}) == 1);  // 576 tiles
  CHECK(emu::conv2d_ours_resolve_ksplit(100, Conv2dShape{1, 2, 2, 1, 1, 1, 1, 1, 0}) == 1);  // 4 pixels: one chunk

  std::vector<float> buf(4096, 0.0f);
  float* p = buf.data();
  const Conv2dShape ok{1, 4, 4, 2, 2, 3, 3, 1, 1};
  CHECK_NOTHROW(emu::conv2d_forward_ours(p, p, p, ok, nullptr));
  CHECK_THROWS_AS(emu::conv2d_forward_ours(p, p, p, Conv2dShape{1, 4, 4, 0, 2, 3, 3, 1, 1}, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_forward_ours(p, p, p, Conv2dShape{1, 4, 4, 2, 2, 3, 3, 0, 1}, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_forward_ours(p, p, p, Conv2dShape{1, 2, 2, 2, 2, 5, 5, 1, 0}, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_forward_ours(p, p, p, Conv2dShape{1, 4, 4, 2, 2, 3, 3, 1, -1}, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_forward_ours(nullptr, p, p, ok, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_backward_ours(p, false, p, p, p, p, ok, -1, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_backward_ours(p, false, nullptr, p, p, nullptr, ok, 0, nullptr), Error);  // dx needs w
  CHECK_THROWS_AS(emu::conv2d_backward_ours(nullptr, false, p, p, nullptr, p, ok, 0, nullptr), Error);  // dw needs x
  CHECK_THROWS_AS(emu::conv2d_backward_ours(p, false, p, nullptr, p, p, ok, 0, nullptr), Error);
  CHECK_THROWS_AS(emu::conv2d_forward_ours(p, p, p, Conv2dShape{1 << 20, 64, 64, 64, 2, 1, 1, 1, 0}, nullptr),
                  Error);  // over 2^31 elements
}

TEST_CASE("emu linear (ours): GEMM with bias, backward dx/dw/db vs the CPU float64 row", "[emu][conv]") {
  for (bool bias : {true, false}) {
    check_linear<float>({1, 13, 13}, bias, 0);     // batch 1
    check_linear<float>({5, 13, 128}, bias, 0);    // two N tiles
    check_linear<float>({70, 128, 13}, bias, 3);   // two M tiles, dw's sum over 70 rows in 3 chunks
    check_linear<float>({3, 128, 128}, bias, 0);
    check_linear<bf16>({5, 13, 128}, bias, 0);
    check_linear<bf16>({70, 128, 13}, bias, 3);
  }
  CHECK(emu::linear_ours_resolve_ksplit(0, 4096, 2048, 128) > 1);  // ImageNet head dw: 64 tiles, 4096 rows
  CHECK(emu::linear_ours_resolve_ksplit(0, 70, 128, 13) == 1);
  std::vector<float> buf(64, 0.0f);
  float* p = buf.data();
  CHECK_THROWS_AS(emu::linear_forward_ours(p, p, p, p, -1, 2, 2, nullptr), Error);
  CHECK_THROWS_AS(emu::linear_forward_ours(nullptr, p, p, p, 2, 2, 2, nullptr), Error);
  CHECK_THROWS_AS(emu::linear_backward_ours(p, p, p, p, p, p, 2, 2, 2, -1, nullptr), Error);
  CHECK_THROWS_AS(emu::linear_backward_ours(p, nullptr, nullptr, p, p, nullptr, 2, 2, 2, 0, nullptr), Error);
  CHECK_THROWS_AS(emu::linear_backward_ours(nullptr, p, nullptr, p, nullptr, p, 2, 2, 2, 0, nullptr), Error);
}

// Hidden (run by name or tag): the emulator's time for a CIFAR-sized ResNet
// layer, forward + backward, to size the emulated training step.
TEST_CASE("emu conv2d (ours): emulator time for a CIFAR ResNet layer", "[.][emu][convtime]") {
  const Conv2dShape s{2, 16, 16, 32, 32, 3, 3, 1, 1};
  const auto& k = emu_row<Conv2dKernels, float>();
  std::vector<float> x(static_cast<size_t>(s.N * s.H * s.W * s.C), 0.5f), w(static_cast<size_t>(s.O * s.K()), 0.25f),
      y(static_cast<size_t>(s.N * s.Ho() * s.Wo() * s.O)), dx(x.size()), dw(w.size(), 0.0f);
  const auto t0 = std::chrono::steady_clock::now();
  k.forward(y.data(), x.data(), w.data(), s);
  const auto t1 = std::chrono::steady_clock::now();
  k.backward(dx.data(), false, dw.data(), y.data(), x.data(), w.data(), s);
  const auto t2 = std::chrono::steady_clock::now();
  WARN("2x16x16x32 -> 32, 3x3: forward " << std::chrono::duration<double>(t1 - t0).count() << " s, backward "
                                          << std::chrono::duration<double>(t2 - t1).count() << " s");
  CHECK(y[0] == 0.5f * 0.25f * 4 * 32);  // a corner pixel: 2x2 taps inside the image, 32 channels
}
