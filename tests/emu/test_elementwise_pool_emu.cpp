// tests/emu/test_elementwise_pool_emu.cpp - the CUDA backend's rows of the
// elementwise and pooling ops (kernels/cuda/elementwise.cu, pool.cu, behind
// the kernel sets of kernels/elementwise.h and kernels/pool.h) as built for
// the kernel emulator, each against the CPU backend's float64 row on the same
// rounded inputs.
//
// Every output lives in a guarded buffer (tests/guarded.h) and starts as NaN
// where the kernel writes (=) (accumulate = false, forwards), as finite values
// where it adds (+=); a pointer offset by one element (the element before it
// is a guard too) takes the kernels off their 16-byte vector path. Sizes:
// n = 1, 7 (float: one vector and a scalar tail), 1003 (vectors and a tail);
// the reductions also 10007 (five blocks: the two-pass path); pools on 7x7
// planes of 13 channels (no vector path) and 16 (vector path of the average
// pool's backward).
//
// Tolerances (u = 2^-24, the fp32 unit roundoff; mag = the reference run on
// |inputs|, the sum of the magnitudes of the terms):
//   float, one-rounding ops (relu, add, add_relu, their backwards, scale by a
//     float-exact s, max pool forward): exact, the fp32 result is the rounded
//     float64 one.
//   float, c roundings of terms of size <= mag: c·u·mag (scale by a non-float
//     s: s, the product, the sum; sum_product / mean backward: the factor, the
//     product or quotient, the sum; max pool backward: one addition per
//     covering window; average pool: HW additions and the division).
//   the reductions sum in double: one rounding of the result (u·|ref|) plus
//     n·2^-53·mag for the double sum.
//   bf16: the same fp32 error plus one rounding to bf16 at the store,
//     2^-8·|ref| (8 significant bits, round to nearest).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/pool.h"
#include "kernels/registry.h"
#include "tests/emu/emu_row.h"
#include "tests/guarded.h"

using namespace simclr;

namespace {

constexpr double kU = 0x1p-24;     // fp32 unit roundoff
constexpr double kBf16 = 0x1p-8;   // bf16 unit roundoff
constexpr float kGuardValue = -777.25f;

template <class T>
double to_d(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <class T>
T from_d(double v) {
  return T(static_cast<float>(v));
}
template <class T>
const char* tname() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

using test::emu_row;
template <template <class> class K>
const K<double>& cpu_ref() {
  return kernels_for<K, double>(Device::cpu());
}

// n values of T at data() + off of a guarded buffer; with off = 1 the element
// before them is a guard as well (and the pointer is not 16-byte aligned).
// Starts as NaN (the guarded buffer's poison).
template <class T>
struct Operand {
  test::Guarded<T> g;
  int off;
  int64_t n;
  Operand(int64_t n_, int off_) : g(static_cast<size_t>(n_ + off_)), off(off_), n(n_) {
    if (off) g[0] = T(kGuardValue);
  }
  T* p() const { return g.data() + off; }
  void set(const std::vector<double>& v) {
    REQUIRE(static_cast<int64_t>(v.size()) == n);
    for (int64_t i = 0; i < n; i++) p()[i] = from_d<T>(v[i]);
  }
  std::vector<double> values() const {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) v[i] = to_d(p()[i]);
    return v;
  }
  bool intact() const {
    if (!g.guards_intact()) return false;
    if (!off) return true;
    const T guard(kGuardValue);
    return std::memcmp(&g[0], &guard, sizeof(T)) == 0;
  }
};

// n normal values rounded to T (so both backends see the same inputs), with
// exact zeros (+0 and -0) sprinkled in for the ReLU masks and the sign rules.
template <class T>
std::vector<double> inputs(int64_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    v[i] = to_d(from_d<T>(scale * nd(rng)));
    if (i % 7 == 3) v[i] = 0.0;
    if (i % 11 == 5) v[i] = -0.0;
  }
  return v;
}

std::vector<double> absv(std::vector<double> v) {
  for (double& x : v) x = std::abs(x);
  return v;
}

// bound[i] = c_ref·u·|ref| + c_mag·u·mag + (bf16: 2^-8·|ref|, the store's rounding)
template <class T>
std::vector<double> bound(const std::vector<double>& ref, const std::vector<double>& mag, double c_ref, double c_mag) {
  std::vector<double> b(ref.size());
  for (size_t i = 0; i < ref.size(); i++)
    b[i] = c_ref * kU * std::abs(ref[i]) + c_mag * kU * (mag.empty() ? 0.0 : mag[i]) +
           (std::is_same_v<T, float> ? 0.0 : kBf16 * std::abs(ref[i]));
  return b;
}

// out against ref: float with an empty bound exactly (= the rounded reference);
// otherwise |out - ref| <= bound (bf16 with an empty bound: one rounding).
template <class T>
void expect_close(const std::string& what, const Operand<T>& out, const std::vector<double>& ref,
                  std::vector<double> b = {}) {
  INFO(what << " " << tname<T>() << " n " << out.n << " off " << out.off);
  CHECK(out.intact());
  REQUIRE(static_cast<int64_t>(ref.size()) == out.n);
  const bool exact = b.empty() && std::is_same_v<T, float>;
  if (b.empty()) b = bound<T>(ref, {}, 0, 0);
  int64_t bad = 0;
  for (int64_t i = 0; i < out.n; i++) {
    const double o = to_d(out.p()[i]);
    const bool ok = exact ? o == static_cast<double>(static_cast<float>(ref[i])) : std::abs(o - ref[i]) <= b[i];
    if (!ok && bad++ < 5) UNSCOPED_INFO("element " << i << ": " << o << " vs reference " << ref[i] << " (bound " << b[i] << ")");
  }
  CHECK(bad == 0);
}

// ------------------------------------------------------------------ elementwise

template <class T>
void check_relu(int64_t n, int off) {
  const auto& k = emu_row<ReluKernels, T>();
  const auto& ref = cpu_ref<ReluKernels>();
  const auto x = inputs<T>(n, 1 + static_cast<uint32_t>(n));
  Operand<T> X(n, off), Y(n, off);
  X.set(x);
  k.forward(Y.p(), X.p(), n);
  std::vector<double> y(x.size(), NAN);
  ref.forward(y.data(), x.data(), n);
  expect_close("relu forward", Y, y);

  const auto dy = inputs<T>(n, 2 + static_cast<uint32_t>(n));
  for (bool acc : {false, true}) {
    Operand<T> DY(n, off), M(n, off), DX(n, off);
    DY.set(dy);
    M.set(y);
    std::vector<double> dx(x.size(), NAN);
    if (acc) DX.set(dx = inputs<T>(n, 3));
    k.backward(DX.p(), acc, DY.p(), M.p(), n);
    ref.backward(dx.data(), acc, dy.data(), y.data(), n);
    expect_close(acc ? "relu backward (+=)" : "relu backward (=)", DX, dx);
  }
  Operand<T> DY(n, off), M(n, off);
  k.backward(nullptr, false, DY.p(), M.p(), n);  // no gradient wanted: nothing to do, nothing read
}

template <template <class> class K, class T>
void check_add(int64_t n, int off) {
  constexpr bool relu = K<T>::op == Op::add_relu;
  const std::string name = relu ? "add_relu" : "add";
  const auto& k = emu_row<K, T>();
  const auto& ref = cpu_ref<K>();
  const auto a = inputs<T>(n, 10 + static_cast<uint32_t>(n)), b = inputs<T>(n, 11 + static_cast<uint32_t>(n));
  Operand<T> A(n, off), B(n, off), Y(n, off);
  A.set(a);
  B.set(b);
  k.forward(Y.p(), A.p(), B.p(), n);
  std::vector<double> y(a.size(), NAN);
  ref.forward(y.data(), a.data(), b.data(), n);
  expect_close(name + " forward", Y, y);

  // y as the mask add_relu's backward reads (the forward's output, rounded to T)
  std::vector<double> yt(y.size());
  for (size_t i = 0; i < y.size(); i++) yt[i] = to_d(from_d<T>(y[i]));
  const auto dy = inputs<T>(n, 12 + static_cast<uint32_t>(n));
  auto backward = [&](auto& kk, auto* da, bool acc_a, auto* db, bool acc_b, const auto* gy, const auto* m) {
    if constexpr (relu)
      kk.backward(da, acc_a, db, acc_b, gy, m, n);
    else
      kk.backward(da, acc_a, db, acc_b, gy, n);
  };
  // mode 0: da and db; 1: da only; 2: db only; 3: da == db (add(x, x)): the second share accumulates
  for (int mode = 0; mode < 4; mode++) {
    for (int flags = 0; flags < 4; flags++) {
      const bool acc_a = flags & 1, acc_b = (flags & 2) || mode == 3;
      INFO("mode " << mode << " accumulate a " << acc_a << " b " << acc_b);
      Operand<T> DY(n, off), M(n, off), DA(n, off), DB(n, off);
      DY.set(dy);
      M.set(yt);
      std::vector<double> da(a.size(), NAN), db(a.size(), NAN);
      if (acc_a) DA.set(da = inputs<T>(n, 13));
      if (acc_b && mode != 3) DB.set(db = inputs<T>(n, 14));
      T* pa = mode == 2 ? nullptr : DA.p();
      T* pb = mode == 1 ? nullptr : mode == 3 ? DA.p() : DB.p();
      backward(k, pa, acc_a, pb, acc_b, DY.p(), M.p());
      if (mode == 3) {  // the first share is stored (rounded to T) before the second adds to it
        backward(ref, da.data(), acc_a, static_cast<double*>(nullptr), false, dy.data(), yt.data());
        for (double& v : da) v = to_d(from_d<T>(v));
        backward(ref, static_cast<double*>(nullptr), false, da.data(), true, dy.data(), yt.data());
      } else {
        backward(ref, mode == 2 ? nullptr : da.data(), acc_a, mode == 1 ? nullptr : db.data(), acc_b, dy.data(),
                 yt.data());
      }
      if (mode != 2) expect_close(name + " backward da", DA, da);
      if (mode == 0 || mode == 2) expect_close(name + " backward db", DB, db);
      if (mode == 1 || mode == 3) CHECK(DB.intact());
    }
  }
}

template <class T>
void check_scale(int64_t n, int off) {
  const auto& k = emu_row<ScaleKernels, T>();
  const auto& ref = cpu_ref<ScaleKernels>();
  const auto x = inputs<T>(n, 20 + static_cast<uint32_t>(n));
  for (double s : {0.75, -1.5, 0.1}) {
    INFO("s " << s);
    const bool s_exact = static_cast<double>(static_cast<float>(s)) == s;
    Operand<T> X(n, off), Y(n, off);
    X.set(x);
    k.forward(Y.p(), X.p(), s, n);
    std::vector<double> y(x.size(), NAN), mag(x.size(), NAN);
    ref.forward(y.data(), x.data(), s, n);
    const auto xa = absv(x);
    ref.forward(mag.data(), xa.data(), std::abs(s), n);
    // float(s) and the product: two roundings unless s is a float
    if (s_exact)
      expect_close("scale forward", Y, y);
    else
      expect_close("scale forward", Y, y, bound<T>(y, mag, 0, 2));

    const auto dy = inputs<T>(n, 21 + static_cast<uint32_t>(n));
    const auto dx0 = inputs<T>(n, 22);
    Operand<T> DY(n, off), DX(n, off);
    DY.set(dy);
    DX.set(dx0);
    k.backward(DX.p(), DY.p(), s, n);
    std::vector<double> dx = dx0, dmag = absv(dx0);
    ref.backward(dx.data(), dy.data(), s, n);
    const auto dya = absv(dy);
    ref.backward(dmag.data(), dya.data(), std::abs(s), n);
    // float(s), the product, the sum (the product and sum may be one FMA on the device)
    expect_close("scale backward (+=)", DX, dx, bound<T>(dx, dmag, 0, 3));
  }
}

template <class T>
void check_sum_product_mean(int64_t n, int off) {
  INFO("reductions of n " << n);
  const auto a = inputs<T>(n, 30 + static_cast<uint32_t>(n)), r = inputs<T>(n, 31 + static_cast<uint32_t>(n));
  const double c_sum = static_cast<double>(n) * 0x1p-29;  // n·2^-53 in units of u: the double sum
  {
    const auto& k = emu_row<SumProductKernels, T>();
    const auto& ref = cpu_ref<SumProductKernels>();
    Operand<T> A(n, off), R(n, off), Y(1, off);
    A.set(a);
    R.set(r);
    k.forward(Y.p(), A.p(), R.p(), n);
    double y = NAN, mag = NAN;
    ref.forward(&y, a.data(), r.data(), n);
    const auto aa = absv(a), ra = absv(r);
    ref.forward(&mag, aa.data(), ra.data(), n);
    expect_close("sum_product forward", Y, {y}, bound<T>({y}, {mag}, 1, c_sum));

    const double g = to_d(from_d<T>(-0.37));
    Operand<T> G(1, off), DA(n, off);
    G.set({g});
    R.set(r);
    const auto da0 = inputs<T>(n, 32);
    DA.set(da0);
    k.backward(DA.p(), R.p(), G.p(), n);
    std::vector<double> da = da0, dmag = absv(da0);
    ref.backward(da.data(), r.data(), &g, n);
    const double ga = std::abs(g);
    ref.backward(dmag.data(), ra.data(), &ga, n);
    expect_close("sum_product backward (+=)", DA, da, bound<T>(da, dmag, 0, 2));  // the product, the sum
  }
  {
    const auto& k = emu_row<MeanKernels, T>();
    const auto& ref = cpu_ref<MeanKernels>();
    Operand<T> X(n, off), Y(1, off);
    X.set(a);
    k.forward(Y.p(), X.p(), n);
    double y = NAN, mag = NAN;
    ref.forward(&y, a.data(), n);
    const auto aa = absv(a);
    ref.forward(&mag, aa.data(), n);
    expect_close("mean forward", Y, {y}, bound<T>({y}, {mag}, 1, c_sum));

    const double g = to_d(from_d<T>(1.9));
    Operand<T> G(1, off), DX(n, off);
    G.set({g});
    const auto dx0 = inputs<T>(n, 33);
    DX.set(dx0);
    k.backward(DX.p(), G.p(), n);
    std::vector<double> dx = dx0, dmag = absv(dx0);
    ref.backward(dx.data(), &g, n);
    ref.backward(dmag.data(), &g, n);
    expect_close("mean backward (+=)", DX, dx, bound<T>(dx, dmag, 0, 2));  // the quotient, the sum
  }
}

template <class T>
void elementwise_all() {
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1003)}) {
    for (int off : {0, 1}) {
      check_relu<T>(n, off);
      check_add<AddKernels, T>(n, off);
      check_add<AddReluKernels, T>(n, off);
      check_scale<T>(n, off);
      check_sum_product_mean<T>(n, off);
    }
  }
  check_sum_product_mean<T>(10007, 0);  // 5 blocks: partials, then one block
  check_sum_product_mean<T>(10007, 1);
}

// ------------------------------------------------------------------ pooling

template <class T>
void check_max_pool(const Pool2dShape& s, int off, bool ties, bool nans) {
  INFO("max_pool2d N " << s.N << " H " << s.H << " W " << s.W << " C " << s.C << " k " << s.k << " stride "
                       << s.stride << " pad " << s.pad << " off " << off << " ties " << ties << " NaN " << nans);
  const auto& k = emu_row<MaxPool2dKernels, T>();
  const auto& ref = cpu_ref<MaxPool2dKernels>();
  const int64_t nx = s.N * s.H * s.W * s.C, ny = s.N * s.Ho() * s.Wo() * s.C;
  auto x = inputs<T>(nx, 40 + static_cast<uint32_t>(nx));
  if (ties)  // few distinct values: many ties, which go to the first element in window order
    for (double& v : x) v = std::round(v);
  if (nans)
    for (int64_t i = 5; i < nx; i += 37) x[i] = NAN;
  Operand<T> X(nx, off), Y(ny, off);
  X.set(x);
  test::Guarded<int32_t> arg(static_cast<size_t>(ny + off));
  int32_t* parg = arg.data() + off;
  k.forward(Y.p(), parg, X.p(), s);
  std::vector<double> y(static_cast<size_t>(ny), 0.0);
  std::vector<int32_t> ra(static_cast<size_t>(ny), -1);
  ref.forward(y.data(), ra.data(), x.data(), s);
  CHECK(Y.intact());
  CHECK(arg.guards_intact());
  int64_t bad = 0;
  for (int64_t i = 0; i < ny; i++) {
    const double o = to_d(Y.p()[i]);
    const bool ok = parg[i] == ra[i] && (std::isnan(y[i]) ? std::isnan(o) : o == y[i]);  // the winner, exactly
    if (!ok && bad++ < 5)
      UNSCOPED_INFO("output " << i << ": " << o << " at " << parg[i] << " vs reference " << y[i] << " at " << ra[i]);
  }
  CHECK(bad == 0);
  if (nans) return;

  // backward through the reference's arg (the same as the kernel's, checked above)
  const auto dy = inputs<T>(ny, 41 + static_cast<uint32_t>(ny));
  const auto dx0 = inputs<T>(nx, 42);
  Operand<T> DY(ny, off), DX(nx, off);
  DY.set(dy);
  DX.set(dx0);
  k.backward(DX.p(), DY.p(), parg, s);
  std::vector<double> dx = dx0, mag = absv(dx0);
  ref.backward(dx.data(), dy.data(), ra.data(), s);
  const auto dya = absv(dy);
  ref.backward(mag.data(), dya.data(), ra.data(), s);
  const int64_t windows = (s.k + s.stride - 1) / s.stride;  // covering windows per axis
  expect_close("max_pool2d backward (+=)", DX, dx, bound<T>(dx, mag, 0, static_cast<double>(windows * windows)));
}

template <class T>
void check_global_avg_pool(int64_t N, int64_t HW, int64_t C, int off) {
  INFO("global_avg_pool N " << N << " HW " << HW << " C " << C);
  const auto& k = emu_row<GlobalAvgPoolKernels, T>();
  const auto& ref = cpu_ref<GlobalAvgPoolKernels>();
  const int64_t nx = N * HW * C, ny = N * C;
  const auto x = inputs<T>(nx, 50 + static_cast<uint32_t>(nx));
  Operand<T> X(nx, off), Y(ny, off);
  X.set(x);
  k.forward(Y.p(), X.p(), N, HW, C);
  std::vector<double> y(static_cast<size_t>(ny), NAN), mag(static_cast<size_t>(ny), NAN);
  ref.forward(y.data(), x.data(), N, HW, C);
  const auto xa = absv(x);
  ref.forward(mag.data(), xa.data(), N, HW, C);
  // fp32 sum of HW terms ((HW - 1)·u·Σ|x| / HW) and the division
  expect_close("global_avg_pool forward", Y, y, bound<T>(y, mag, 0, static_cast<double>(HW)));

  const auto dy = inputs<T>(ny, 51 + static_cast<uint32_t>(ny));
  const auto dx0 = inputs<T>(nx, 52);
  Operand<T> DY(ny, off), DX(nx, off);
  DY.set(dy);
  DX.set(dx0);
  k.backward(DX.p(), DY.p(), N, HW, C);
  std::vector<double> dx = dx0, dmag = absv(dx0);
  ref.backward(dx.data(), dy.data(), N, HW, C);
  const auto dya = absv(dy);
  ref.backward(dmag.data(), dya.data(), N, HW, C);
  expect_close("global_avg_pool backward (+=)", DX, dx, bound<T>(dx, dmag, 0, 3));  // 1/HW, the product, the sum
}

template <class T>
void pool_all() {
  for (int off : {0, 1}) {
    check_max_pool<T>({1, 7, 7, 13, 3, 2, 1}, off, false, false);  // the ResNet stem's pool shape, small
    check_max_pool<T>({1, 7, 7, 13, 3, 2, 1}, off, true, false);
    check_max_pool<T>({2, 7, 7, 13, 3, 1, 1}, off, true, false);   // overlapping windows: up to 9 per input
    check_max_pool<T>({2, 7, 6, 5, 2, 2, 0}, off, false, false);   // the last row/column never covered
    check_max_pool<T>({1, 7, 7, 13, 3, 2, 1}, off, false, true);
    check_global_avg_pool<T>(1, 49, 13, off);
    check_global_avg_pool<T>(2, 49, 16, off);  // C a multiple of the vector width: the vector path (off 0)
  }
}

}  // namespace

TEST_CASE("emu table: an f32 and a bf16 row for each elementwise and pooling op", "[emu][elementwise]") {
  for (Op op : {Op::relu, Op::add, Op::add_relu, Op::sum_product, Op::mean, Op::scale, Op::max_pool2d,
                Op::global_avg_pool}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      int rows = 0;
      for (const KernelRow& r : emu::kernel_table()) rows += r.op == op && r.dtype == dt;
      INFO(op_name(op) << " " << dtype_name(dt));
      CHECK(rows == 1);
    }
  }
}

TEST_CASE("emu elementwise: relu, add, add_relu, scale, sum_product, mean rows vs the CPU float64 reference",
          "[emu][elementwise]") {
  SECTION("f32") { elementwise_all<float>(); }
  SECTION("bf16") { elementwise_all<bf16>(); }
}

TEST_CASE("emu pool: max_pool2d and global_avg_pool rows vs the CPU float64 reference", "[emu][elementwise]") {
  SECTION("f32") { pool_all<float>(); }
  SECTION("bf16") { pool_all<bf16>(); }
}
