// tests/ntxent_case.h - how the kernel rows of the op table
// (tests/op_table_cases.h, rows with a `dev` tolerance) run: under the
// emulator (tests/emu/test_op_table_emu.cpp) and on a GPU
// (tests/gpu/test_op_table_gpu.cpp). run_dev_rows() walks the rows and
// dispatches on the op; NT-Xent is the op with CUDA kernels today (a new
// kernel adds its case there). Both suites share a row's inputs and their
// float64 CPU reference, one run of the fused kernels over simulated ranks,
// and the tolerance check; they differ only in the kernel set
// (NTXENT_KERNEL_SET: the simclr::emu or simclr::gpu launchers, and where
// the buffers live).
//
// Inputs: random normal z (V x D), every 5th positive pair made similar
// (a realistic, peaked softmax), rounded to T; the reference sees the rounded
// values in float64. Rows are split over `ranks` simulated ranks unevenly
// (bounds[r] = V r² / ranks²). Every buffer has guard bytes on both sides
// (tests/guarded.h); loss, lse and the whole workspace start as NaN bytes, so
// an unwritten output shows; the backward starts dz at -0.5·(expected
// gradient) rounded to T, so a kernel that overwrites instead of
// accumulating is caught.
//
// Tolerances: the row's `dev` tolerance (its reason is in the row, derived
// in tol::kDevBf16 / kDevF32): `fwd` bounds the error of a similarity, so
// the lse is held to fwd/τ (+1e-5 for the fp32 output's rounding) and the
// loss to twice that; `grad` bounds the gradient relative to its largest
// entry. The emulator computes exp2 exactly and sums mma products in order;
// the hardware's ex2.approx (2 ulp) and accumulation order are far inside.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/op_table.h"
#include "kernels/ntxent.h"
#include "tests/guarded.h"
#include "tests/op_table_cases.h"

namespace ntxent_case {

using simclr::bf16;

inline double value(float x) { return x; }
inline double value(bf16 x) { return static_cast<float>(x); }
template <class T>
T make(double x) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(static_cast<float>(x));
  else
    return static_cast<T>(static_cast<float>(x));
}

struct Case {
  int64_t V, D;
  double tau;
  int ksplit;  // 0: auto
  int ranks;   // simulated ranks (1: single device)
};

inline Case case_of(const simclr::test::OpCase& row) {
  return {row.shapes[0][0], row.shapes[0][1], row.opt.tau, row.opt.ksplit, row.opt.ranks};
}

// A case's inputs and its float64 reference.
template <class T>
struct Reference {
  std::vector<T> z;                 // V x D, what the kernels read
  std::vector<double> z64;          // the same values
  std::vector<double> lse, dz;      // per-row lse, dL/dz for dloss
  double loss = 0, dloss = 1.7;
  std::vector<int64_t> bounds;      // rank r holds rows [bounds[r], bounds[r+1])
  // dz's starting value for rows [b, b + R) (accumulation check)
  std::vector<T> dz_base(int64_t b, int64_t R, int64_t D) const {
    std::vector<T> base(R * D);
    for (int64_t i = 0; i < R * D; i++) base[i] = make<T>(-0.5 * dz[b * D + i]);
    return base;
  }
};

template <class T>
Reference<T> make_reference(const Case& c, uint64_t seed) {
  const int64_t V = c.V, D = c.D;
  Reference<T> r;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  r.z.resize(V * D);
  for (auto& x : r.z) x = make<T>(nd(rng));
  for (int64_t i = 0; i < V / 2; i += 5)
    for (int64_t k = 0; k < D; k++) r.z[(i + V / 2) * D + k] = make<T>(value(r.z[i * D + k]) + 0.3 * nd(rng));
  r.z64.resize(V * D);
  for (int64_t i = 0; i < V * D; i++) r.z64[i] = value(r.z[i]);
  std::vector<double> rows(V);
  r.lse.assign(V, 0.0);
  r.dz.assign(V * D, 0.0);
  simclr::cpu::ntxent_forward(rows.data(), r.lse.data(), r.z64.data(), V, D, c.tau, 0, V);
  for (double x : rows) r.loss += x;
  r.loss /= static_cast<double>(V);
  simclr::cpu::ntxent_backward(r.dz.data(), r.z64.data(), r.lse.data(), r.dloss, V, D, c.tau, 0, V);
  r.bounds.resize(c.ranks + 1);
  for (int k = 0; k <= c.ranks; k++) r.bounds[k] = V * k * k / (c.ranks * c.ranks);
  return r;
}

// Errors of one run: loss and lse absolute, gradient relative to its largest
// entry (or to the natural scale dloss/(Vτ|z|) when the true gradient
// vanishes, 2N = 2 and d = 1).
struct Result {
  double loss_err = 0, lse_err = 0, grad_err = 0;
  double gerr = 0, gmax = 0;  // accumulated by add_grad
  // got: dloss·dL/dz of rows [b, b + R) as computed.
  template <class T>
  void add_grad(const Reference<T>& ref, const std::vector<double>& got, int64_t b, int64_t R, int64_t D) {
    for (int64_t i = 0; i < R * D; i++) {
      const double want = ref.dz[b * D + i];
      REQUIRE(std::isfinite(got[i]));
      gmax = std::max(gmax, std::abs(want));
      gerr = std::max(gerr, std::abs(got[i] - want));
    }
  }
  // lse_all: every row's lse, or null (not computed).
  template <class T>
  void finish(const Reference<T>& ref, const Case& c, double loss, const float* lse_all) {
    loss_err = std::abs(loss - ref.loss);
    for (int64_t i = 0; lse_all && i < c.V; i++) {
      REQUIRE(std::isfinite(lse_all[i]));
      lse_err = std::max(lse_err, std::abs(lse_all[i] - ref.lse[i]));
    }
    double znorm = 0;
    for (double x : ref.z64) znorm += x * x;
    znorm = std::sqrt(znorm / c.V);
    grad_err = gerr / std::max(gmax, ref.dloss / (c.V * c.tau * znorm));
  }
};

// The row's tolerance (see the top of this file).
inline void check_result(const Case& c, const Result& r, const simclr::test::Tol& tol, const char* what) {
  INFO(what << " 2N=" << c.V << " d=" << c.D << " tau=" << c.tau << " ksplit=" << c.ksplit << " ranks=" << c.ranks);
  INFO("loss err " << r.loss_err << ", lse err " << r.lse_err << ", grad rel err " << r.grad_err);
  const double logit_tol = tol.fwd / c.tau + 1e-5;
  CHECK(r.lse_err <= logit_tol);
  CHECK(r.loss_err <= 2 * logit_tol);
  CHECK(r.grad_err <= tol.grad);
}

inline void print_result(const char* what, const Case& c, const Result& r) {
  std::printf("%s 2N=%lld d=%lld tau=%g ksplit=%d ranks=%d: loss err %.3g, lse err %.3g, grad rel err %.3g\n", what,
              static_cast<long long>(c.V), static_cast<long long>(c.D), c.tau, c.ksplit, c.ranks, r.loss_err,
              r.lse_err, r.grad_err);
}

// A kernel set: the launchers of namespace `ns`, buffers on `device`, launches on `stream`.
#define NTXENT_KERNEL_SET(Name, ns, device_expr, stream_expr)                                                  \
  struct Name {                                                                                              \
    static ::simclr::Device device() { return device_expr; }                                                 \
    template <class... A>                                                                                    \
    static int resolve_ksplit(A... a) { return ns::ntxent_resolve_ksplit(a...); }                            \
    template <class... A>                                                                                    \
    static size_t workspace_bytes(A... a) { return ns::ntxent_workspace_bytes(a...); }                       \
    template <class... A>                                                                                    \
    static void forward(A... a) { ns::ntxent_forward(a..., stream_expr); }                                   \
    template <class... A>                                                                                    \
    static void backward(A... a) { ns::ntxent_backward(a..., stream_expr); }                                 \
  }

// Forward + backward of kernel set K on the rows of each simulated rank, in
// guarded, poisoned buffers (reading a buffer back waits for the kernels).
template <class T, class K>
Result run_kernels(const Case& c, const Reference<T>& ref) {
  using simclr::test::Guarded;
  const int64_t V = c.V, D = c.D;
  const std::vector<int64_t>& b = ref.bounds;
  const simclr::Device dev = K::device();
  constexpr bool fp32 = std::is_same_v<T, float>;
  const Guarded<T> z(ref.z, dev);
  std::vector<float> lse_all(V, NAN);
  double loss = 0;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    const int ks = K::resolve_ksplit(c.ksplit, V, R);
    const Guarded<unsigned char> ws(K::workspace_bytes(V, D, R, fp32, ks), 0xFF, dev);
    const Guarded<float> lg(1, 0xFF, dev), lse(R, 0xFF, dev);
    K::forward(lg.data(), lse.data(), z.data(), ws.data(), V, D, c.tau, b[r], b[r + 1], ks);
    REQUIRE(lg.guards_intact());
    REQUIRE(lse.guards_intact());
    REQUIRE(ws.guards_intact());
    const float l = lg.get()[0];
    REQUIRE(std::isfinite(l));
    loss += l;
    const std::vector<float> part = lse.get();
    std::copy(part.begin(), part.end(), lse_all.begin() + b[r]);
  }
  REQUIRE(z.guards_intact());
  // backward: each rank its own rows, from the gathered lse; dz starts at a known base
  const Guarded<float> lse_g(lse_all, dev), dl(std::vector<float>{static_cast<float>(ref.dloss)}, dev);
  Result res;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    if (R == 0) continue;
    const int ks = K::resolve_ksplit(c.ksplit, V, R);
    const Guarded<unsigned char> ws(K::workspace_bytes(V, D, R, fp32, ks), 0xFF, dev);
    const std::vector<T> base = ref.dz_base(b[r], R, D);
    const Guarded<T> dz(base, dev);
    K::backward(dz.data(), z.data(), lse_g.data(), dl.data(), ws.data(), V, D, c.tau, b[r], b[r + 1], ks);
    REQUIRE(dz.guards_intact());
    REQUIRE(ws.guards_intact());
    const std::vector<T> out = dz.get();
    std::vector<double> got(out.size());
    for (size_t i = 0; i < out.size(); i++) got[i] = value(out[i]) - value(base[i]);
    res.add_grad(ref, got, b[r], R, D);
  }
  res.finish(ref, c, loss, lse_all.data());
  return res;
}

// One NT-Xent row: the kernels of set K against the reference, then
// extra(case, reference, row) (the GPU suite runs the op on CUDA tensors there).
template <class T, class K, class Extra>
void check_ntxent_row(const simclr::test::OpCase& row, uint64_t seed, const char* what, bool print, Extra&& extra) {
  const Case c = case_of(row);
  const Reference<T> ref = make_reference<T>(c, seed);
  const Result r = run_kernels<T, K>(c, ref);
  if (print) print_result(what, c, r);
  check_result(c, r, row.dev, what);
  extra(c, ref, row);
}

// Every dev row of dtype dt (with emulated_only, the rows the emulator runs) on kernel set K.
template <class K, class Extra>
void run_dev_rows(simclr::DType dt, bool emulated_only, const char* what, bool print, Extra&& extra) {
  using simclr::Op;
  const std::vector<simclr::test::OpCase>& rows = simclr::test::op_cases();
  int ran = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    const simclr::test::OpCase& row = rows[i];
    if (!row.dev.on() || row.dtype != dt || (emulated_only && !row.opt.emulate)) continue;
    if (row.op != Op::ntxent) continue;  // the other ops' dev rows: the op-level runner (tests/op_table_run.h)
    INFO("row " << i << ": " << simclr::op_name(row.op) << " / " << row.name << " / " << simclr::dtype_name(dt)
                << " (tolerance: " << row.dev.why << ")");
    const uint64_t seed = simclr::test::row_seed(i);
    switch (row.op) {
      case Op::ntxent:
        if (dt == simclr::DType::bf16)
          check_ntxent_row<bf16, K>(row, seed, what, print, extra);
        else if (dt == simclr::DType::f32)
          check_ntxent_row<float, K>(row, seed, what, print, extra);
        else
          FAIL("no ntxent kernel for dtype " << simclr::dtype_name(dt));
        break;
      default: FAIL("op " << simclr::op_name(row.op) << " has a dev row but no kernel runner in tests/ntxent_case.h");
    }
    simclr::cpu_alloc_check();  // the CPU allocator's guards, when its debug mode is on
    ran++;
  }
  CHECK(ran > 0);
}

}  // namespace ntxent_case
