// tests/emu/test_table_emu.cpp - the CUDA backend's table (kernels/cuda/
// table.cu) as built for the kernel emulator: the same rows as the real
// build, and its NT-Xent rows - the fused kernels behind the one
// NtxentKernels<T> contract (workspace query, automatic key split, the
// engine's stream) - against the CPU backend's row in float64 (the reference)
// on the same rounded inputs. The launchers themselves are tested in depth by
// test_ntxent_emu.cpp; this checks what the op calls.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/ntxent.h"
#include "kernels/registry.h"

using namespace simclr;

namespace {

template <class T>
const NtxentKernels<T>& emu_ntxent() {
  for (const KernelRow& r : emu::kernel_table())
    if (r.op == Op::ntxent && r.dtype == dtype_of<T>::value) return *static_cast<const NtxentKernels<T>*>(r.kernels);
  FAIL("no emulated NT-Xent row for " << dtype_name(dtype_of<T>::value));
  throw 0;
}

// Forward (loss of rows [r0, r1), their lse) and backward (dloss = 0.7) of the
// emulated row against the CPU row in float64 on the same inputs.
template <class T>
void check_ntxent_row(int64_t V, int64_t D, double tau, int64_t r0, int64_t r1, double tol) {
  INFO("V " << V << " D " << D << " tau " << tau << " rows [" << r0 << ", " << r1 << ") " << dtype_name(dtype_of<T>::value));
  const int64_t R = r1 - r0;
  std::mt19937 rng(static_cast<uint32_t>(V * 131 + D));
  std::normal_distribution<double> nd;
  std::vector<T> z(static_cast<size_t>(V * D));
  std::vector<double> zd(z.size());
  for (size_t i = 0; i < z.size(); i++) z[i] = T(static_cast<float>(nd(rng))), zd[i] = static_cast<double>(static_cast<float>(z[i]));

  const auto& ref = kernels_for<NtxentKernels, double>(Device::cpu());
  CHECK(ref.min_tau == 0.0);
  CHECK(ref.workspace_bytes(V, D, R) == 0);
  double ref_loss = 0;
  std::vector<double> ref_lse(V), ref_dz(static_cast<size_t>(R * D), 0.0);
  ref.forward(&ref_loss, ref_lse.data(), zd.data(), nullptr, V, D, tau, 0, V);  // lse of every row, for backward
  ref.forward(&ref_loss, ref_lse.data() + r0, zd.data(), nullptr, V, D, tau, r0, r1);
  const double dloss = 0.7;
  ref.backward(ref_dz.data(), zd.data(), ref_lse.data(), &dloss, nullptr, V, D, tau, r0, r1);

  const auto& k = emu_ntxent<T>();
  CHECK(k.min_tau == kNtxentMinTau);
  const size_t ws_bytes = k.workspace_bytes(V, D, R);
  CHECK(ws_bytes == emu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, emu::ntxent_resolve_ksplit(0, V, R)));
  std::vector<unsigned char> ws(ws_bytes, 0xFF);  // NaN bytes: the kernels must not read what they did not write
  float loss = NAN;
  std::vector<float> lse(static_cast<size_t>(R), NAN);
  k.forward(&loss, lse.data(), z.data(), ws.data(), V, D, tau, r0, r1);
  CHECK(std::abs(loss - ref_loss) <= tol * std::max(1.0, std::abs(ref_loss)));
  for (int64_t i = 0; i < R; i++) CHECK(std::abs(lse[i] - ref_lse[r0 + i]) <= tol * std::max(1.0, std::abs(ref_lse[r0 + i])));

  std::vector<float> lse_all(ref_lse.begin(), ref_lse.end());
  const float dl = static_cast<float>(dloss);
  std::vector<T> dz(static_cast<size_t>(R * D), T(0.5f));  // backward accumulates onto 0.5
  std::memset(ws.data(), 0xFF, ws.size());
  k.backward(dz.data(), z.data(), lse_all.data(), &dl, ws.data(), V, D, tau, r0, r1);
  double scale = 0;
  for (double g : ref_dz) scale = std::max(scale, std::abs(g));
  REQUIRE(scale > 0);
  double err = 0;
  for (size_t i = 0; i < dz.size(); i++) err = std::max(err, std::abs(static_cast<double>(static_cast<float>(dz[i])) - 0.5 - ref_dz[i]));
  INFO("max |dz - ref| " << err << " of max |ref| " << scale);
  CHECK(err <= tol * scale + (std::is_same_v<T, float> ? 0.0 : std::ldexp(0.5 + scale, -8)));  // bf16: rounding of 0.5 + g
}

}  // namespace

TEST_CASE("emu table: the CUDA backend's rows, NT-Xent through the shared contract", "[emu][table]") {
  const auto rows = emu::kernel_table();
  // NT-Xent first; elementwise/pool: test_elementwise_pool_emu.cpp; conv2d/linear: test_conv_gemm_emu.cpp;
  // BN, L2, CE: test_bn_norm_emu.cpp
  REQUIRE(rows.size() >= 2);
  CHECK(rows[0].op == Op::ntxent);
  CHECK(rows[0].dtype == DType::f32);
  CHECK(rows[1].op == Op::ntxent);
  CHECK(rows[1].dtype == DType::bf16);
#ifdef SIMCLR_WITH_CUDA
  const auto real = gpu::kernel_table();  // the same source, compiled by nvcc
  REQUIRE(real.size() <= rows.size());  // the emulated build adds our conv2d/linear rows (kernels/cuda/table.cu)
  for (size_t i = 0; i < real.size(); i++) {
    CHECK(real[i].op == rows[i].op);
    CHECK(real[i].dtype == rows[i].dtype);
  }
#endif
  // fp32 input (bf16x3 products, ~16 mantissa bits) and bf16 input (8 bits)
  check_ntxent_row<float>(12, 7, 0.1, 0, 12, 1e-4);
  check_ntxent_row<float>(70, 33, 0.5, 20, 70, 1e-4);  // a rank's rows: loss is the partial sum / V
  check_ntxent_row<bf16>(12, 7, 0.1, 0, 12, 2e-2);
}
