// tests/op_table_run.h - how the op test table's rows are run (shared by the
// CPU modes, tests/test_op_table.cpp, and the kernel modes on the emulated
// device and on a GPU, tests/emu/test_op_table_emu.cpp and
// tests/gpu/test_op_table_gpu.cpp): a row's inputs, the op applied to them
// (and its composite), one run of forward + backward, and the comparison of
// two runs within a row's tolerance. A run on a device (emu, cuda) takes its
// inputs there and reads its output and gradients back to the host.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/op_table.h"
#include "kernels/registry.h"
#include "losses/losses.h"
#include "losses/ntxent_composite.h"
#include "ops/ops.h"
#include "tests/helpers.h"
#include "tests/op_table_cases.h"

namespace simclr::test {

// ------------------------------------------------------------------ inputs

struct Inputs {
  std::vector<Tensor> diff;    // differentiable inputs (require grad), in the op's order
  std::vector<Tensor> consts;  // constants in the inputs' dtype (sum_product's r, BN running statistics)
  std::vector<Tensor> fixed;   // constants of their own dtype (labels, f32 BN running statistics)
};

// |x| in [0.05, 1) with alternating signs: away from ReLU's kink.
inline Tensor away_from_zero(const Shape& s, uint64_t seed) {
  Tensor x = rand_tensor(s, seed, 0.05, 1.0);
  double* p = x.data<double>();
  for (int64_t i = 0; i < x.numel(); i += 2) p[i] = -p[i];
  return x;
}

// Distinct values spaced by 2/numel (far apart compared with the finite-difference step), shuffled.
inline Tensor distinct_tensor(const Shape& s, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::f64);
  std::vector<int64_t> idx(static_cast<size_t>(t.numel()));
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 g(seed);
  std::shuffle(idx.begin(), idx.end(), g);
  for (int64_t i = 0; i < t.numel(); i++)
    t.data<double>()[i] = -1.0 + 2.0 * static_cast<double>(idx[i]) / static_cast<double>(t.numel());
  return t;
}

inline Tensor labels_for(int64_t N, int64_t K, DType dt, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int64_t> v(static_cast<size_t>(N));
  for (auto& l : v) l = static_cast<int64_t>(g() % static_cast<uint64_t>(K));
  Tensor t = Tensor::from_vector(v, {N});
  if (dt == DType::i64) return t;
  std::vector<int32_t> w(v.begin(), v.end());
  return Tensor::from_vector(w, {N});
}

inline bool bn_has_running(const OpCase& c) { return !c.opt.training || c.opt.running; }

// The row's inputs in float64.
inline Inputs make_inputs(const OpCase& c, uint64_t seed) {
  const Shape& s = c.shapes[0];
  Inputs in;
  switch (c.op) {
    case Op::relu: in.diff = {away_from_zero(s, seed)}; break;
    case Op::add: in.diff = {rand_tensor(s, seed), rand_tensor(c.shapes[1], seed + 1)}; break;
    case Op::add_relu: {  // b = t - a with |t| >= 0.05: a + b stays away from the kink
      Tensor a = rand_tensor(s, seed), b = away_from_zero(c.shapes[1], seed + 1);
      for (int64_t i = 0; i < b.numel(); i++) b.data<double>()[i] -= a.at(i);
      in.diff = {a, b};
      break;
    }
    case Op::sum_product:
      in.diff = {rand_tensor(s, seed)};
      in.consts = {rand_tensor(s, seed + 1)};
      break;
    case Op::mean:
    case Op::scale:
    case Op::cast:
    case Op::global_avg_pool:
    case Op::ntxent: in.diff = {rand_tensor(s, seed)}; break;
    case Op::linear:
    case Op::conv2d:
      in.diff = {rand_tensor(s, seed), rand_tensor(c.shapes[1], seed + 1)};
      if (c.op == Op::linear && c.opt.bias) in.diff.push_back(rand_tensor({c.shapes[1][0]}, seed + 2));
      break;
    case Op::max_pool2d: in.diff = {distinct_tensor(s, seed)}; break;
    case Op::batch_norm: {
      const int64_t C = s[-1];
      in.diff = {rand_tensor(s, seed, -2, 3)};
      if (c.opt.affine) {
        in.diff.push_back(rand_tensor({C}, seed + 1, 0.5, 1.5));  // gamma
        in.diff.push_back(rand_tensor({C}, seed + 2));            // beta
      }
      if (bn_has_running(c)) {
        const DType bt = c.opt.f32_buffers ? DType::f32 : DType::f64;
        std::vector<Tensor> rs = {rand_tensor({C}, seed + 3, -0.5, 0.5, bt), rand_tensor({C}, seed + 4, 0.5, 2.0, bt)};
        (c.opt.f32_buffers ? in.fixed : in.consts) = rs;
      }
      break;
    }
    case Op::l2_normalize: {
      in.diff = {rand_tensor(s, seed, -2, 2)};
      if (c.opt.tiny_row)  // row 1: norm ~1e-5, below eps
        for (int64_t d = 0; d < s[1]; d++) in.diff[0].data<double>()[s[1] + d] *= 1e-5;
      break;
    }
    case Op::cross_entropy:
      in.diff = {rand_tensor(s, seed, -3, 3)};
      in.fixed = {labels_for(s[0], s[1], c.opt.labels, seed + 1)};
      break;
    case Op::COUNT: break;
  }
  for (Tensor& t : in.diff) t.set_requires_grad();
  return in;
}

// The same inputs in dtype dt (differentiable inputs and the constants that
// follow them), on `device` (a device gets copies of every input, the
// constants of their own dtype included).
inline Inputs convert(const Inputs& in, DType dt, Device device = Device::cpu()) {
  Inputs out = in;
  for (Tensor& t : out.diff) t = t.to(dt).to(device).set_requires_grad();
  for (Tensor& t : out.consts) t = t.to(dt).to(device);
  if (!device.is_cpu())
    for (Tensor& t : out.fixed) t = t.to(device);
  return out;
}

// ------------------------------------------------------------------ the op, its composite

inline BatchNormOptions bn_options(const OpCase& c, bool relu) {
  BatchNormOptions o;
  o.training = c.opt.training;
  o.relu = relu;
  return o;
}

inline Tensor apply_bn(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in, bool relu) {
  const std::vector<Tensor>& rs = c.opt.f32_buffers ? in.fixed : in.consts;
  const Tensor rm = bn_has_running(c) ? rs[0] : Tensor(), rv = bn_has_running(c) ? rs[1] : Tensor();
  const Tensor g = c.opt.affine ? d[1] : Tensor(), b = c.opt.affine ? d[2] : Tensor();
  return batch_norm(d[0], g, b, rm, rv, bn_options(c, relu));
}

// The op of the row on the differentiable inputs d (the row's other inputs from `in`).
inline Tensor apply(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in) {
  switch (c.op) {
    case Op::relu: return relu(d[0]);
    case Op::add: return add(d[0], d[1]);
    case Op::add_relu: return add_relu(d[0], d[1]);
    case Op::sum_product: return sum_product(d[0], in.consts[0]);
    case Op::mean: return mean(d[0]);
    case Op::scale: return scale(d[0], c.opt.scale);
    case Op::linear: return linear(d[0], d[1], c.opt.bias ? d[2] : Tensor());
    case Op::conv2d: return conv2d(d[0], d[1], c.opt.stride, c.opt.pad);
    case Op::max_pool2d: return max_pool2d(d[0], c.opt.kernel, c.opt.stride, c.opt.pad);
    case Op::global_avg_pool: return global_avg_pool(d[0]);
    case Op::batch_norm: return apply_bn(c, d, in, c.opt.relu);
    case Op::l2_normalize: return l2_normalize(d[0], c.opt.eps);
    case Op::cross_entropy: return cross_entropy(d[0], in.fixed[0]);
    case Op::ntxent: return ntxent(d[0], c.opt.tau);
    case Op::cast: return cast(cast(d[0], c.opt.cast_to), d[0].dtype());
    case Op::COUNT: break;
  }
  FAIL("no call for op " << op_name(c.op));
  return Tensor();
}

// The fused op written as its composite of primitive ops.
inline Tensor apply_composite(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in) {
  switch (c.op) {
    case Op::add_relu: return relu(add(d[0], d[1]));
    case Op::batch_norm: return relu(apply_bn(c, d, in, false));
    case Op::ntxent: return ntxent_composite(d[0], c.opt.tau);
    default: break;
  }
  FAIL("no composite for op " << op_name(c.op));
  return Tensor();
}

// ------------------------------------------------------------------ running the modes

inline std::string label(const OpCase& c) { return std::string(op_name(c.op)) + " / " + c.name + " / " + dtype_name(c.dtype); }

inline bool verbose() { return std::getenv("OP_TABLE_VERBOSE") != nullptr; }

inline void report(const OpCase& c, const char* mode, double fwd, double grad) {
  if (verbose()) std::printf("%-6s %-70s fwd %.3g grad %.3g\n", mode, label(c).c_str(), fwd, grad);
}

inline int64_t count_nonfinite(const Tensor& t) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); i++) bad += !std::isfinite(t.at(i));
  return bad;
}

// The op's output (no tape) and its gradients for the cotangent r (on the inputs'
// device), both read back to the host; every call is followed by the allocator's
// guard check, and no output or gradient may hold a NaN (an unwritten element).
struct Run {
  Tensor y;
  std::vector<Tensor> grads;
};
template <class F>
Run run(F&& f, const Inputs& in, const Tensor& r) {
  Run out;
  {
    NoGrad ng;
    out.y = f(in.diff).to(Device::cpu());
  }
  cpu_alloc_check();
  out.grads = grads_of(f, in.diff, r);
  for (Tensor& g : out.grads)
    if (g.defined()) g = g.to(Device::cpu());
  cpu_alloc_check();
  CHECK(count_nonfinite(out.y) == 0);
  for (const Tensor& g : out.grads) {
    REQUIRE(g.defined());
    CHECK(count_nonfinite(g) == 0);
  }
  return out;
}

// max over the gradients of rel_err(a_i, b_i)
inline double grad_err(const Run& a, const Run& b) {
  REQUIRE(a.grads.size() == b.grads.size());
  double e = 0;
  for (size_t i = 0; i < a.grads.size(); i++) e = std::max(e, rel_err(a.grads[i], b.grads[i]));
  return e;
}

// Runs `got` and `want` (on their inputs) with the same random cotangent and checks
// got's output and gradients against want's within tol; returns got's run.
template <class F, class G>
Run compare(const OpCase& c, const char* mode, const Tol& tol, uint64_t seed, F&& got, const Inputs& got_in, G&& want,
            const Inputs& want_in) {
  Tensor y0;
  {
    NoGrad ng;
    y0 = want(want_in.diff);
  }
  const Tensor r = rand_tensor(y0.shape(), seed + 7);
  const Run w = run(want, want_in, r), g = run(got, got_in, r.to(got_in.diff[0].dtype()).to(got_in.diff[0].device()));
  const double ef = rel_err(g.y, w.y), eg = grad_err(g, w);
  report(c, mode, ef, eg);
  CHECK(ef <= tol.fwd);
  CHECK(eg <= tol.grad);
  return g;
}

// Calls body(row, seed) for every row that runs the mode, with the allocator's debug mode on.
template <class F>
void for_rows(Tol OpCase::*mode, F&& body) {
  CpuAllocDebug debug;
  const std::vector<OpCase>& rows = op_cases();
  int ran = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    const OpCase& c = rows[i];
    if (!(c.*mode).on()) continue;
    INFO("row " << i << ": " << label(c) << " (tolerance: " << (c.*mode).why << ")");
    const auto t0 = std::chrono::steady_clock::now();
    body(c, simclr::test::row_seed(i));
    if (verbose()) {
      const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
      std::printf("       %.1f ms\n", ms.count());
    }
    clear_tape();
    cpu_alloc_check();
    ran++;
  }
  CHECK(ran > 0);
}

// Mode (c)/(d) for every row with a device tolerance except the NT-Xent
// kernel rows (tests/ntxent_case.h runs those): the op on `device` (emu or
// cuda) against the op in float64 on the CPU. GPU-only rows (opt.emulate =
// false) run only on a GPU. Returns the number of rows run.
// Mode (e), device cpu: the bf16 rows (`only` = bf16) of the ops the CPU
// backend has in bf16, with the same dev tolerances (its bf16 kernels follow
// the CUDA twins' convention: bf16 loads and stores, f32 arithmetic).
inline int run_op_rows_on(Device device, std::optional<DType> only = std::nullopt) {
  int ran = 0;
  for_rows(&OpCase::dev, [&](const OpCase& c, uint64_t seed) {
    if (c.op == Op::ntxent || (device.is_emu() && !c.opt.emulate)) return;
    if (only && c.dtype != *only) return;
    if (device.is_cpu() && !supports(DeviceKind::cpu, c.op, c.dtype)) return;
    // A dev tolerance claims that the CUDA backend has the op in this dtype.
    REQUIRE(supports(device.kind, c.op, c.dtype));
    const Inputs in = make_inputs(c, seed), dev = convert(in, c.dtype, device);
    auto f64 = [&](const std::vector<Tensor>& d) { return apply(c, d, in); };
    auto fdev = [&](const std::vector<Tensor>& d) {
      Tensor y = apply(c, d, dev);
      CHECK(y.device() == device);
      return y;
    };
    const Run r = compare(c, "dev", c.dev, seed, fdev, dev, f64, in);
    CHECK(r.y.dtype() == c.dtype);
    ran++;
  });
  return ran;
}

}  // namespace simclr::test
