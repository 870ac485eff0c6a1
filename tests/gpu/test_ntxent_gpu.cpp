// tests/gpu/test_ntxent_gpu.cpp - the fused NT-Xent kernels on a real GPU
// against the float64 CPU reference: the emulated table of
// tests/ntxent_case.h (also run emulated) plus 1000 and 4096 views and d = 2048, the
// engine op (autograd on CUDA tensors), and the unfused cuBLAS baseline.
// Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device.
//
// Same poisoning and guards as the emulated tests: loss/lse and the whole
// workspace filled with NaN bytes, 256 guard bytes around every device
// buffer, dz pre-filled with -0.5·(expected gradient) (the backward
// accumulates). Case table, reference and tolerances: tests/ntxent_case.h;
// the hardware's ex2.approx and mma accumulation order are far inside them.
// The largest rows (4096 x 2048) take a few seconds of CPU reference each.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda_check.h"
#include "engine/device.h"
#include "tests/skip.h"
#include "engine/dtype.h"
#include "losses/losses.h"
#include "kernels/ntxent.h"
#include "tests/ntxent_case.h"

namespace gpu = simclr::gpu;
using namespace ntxent_case;
using simclr::bf16;


namespace {

// n bytes of device memory with 256 guard bytes (0xA5) on each side.
struct DevBuf {
  static constexpr size_t kGuard = 256;
  unsigned char* raw = nullptr;
  size_t bytes;
  DevBuf(size_t b, int fill) : bytes(b) {
    CUDA_CHECK(cudaMalloc(&raw, bytes + 2 * kGuard));
    CUDA_CHECK(cudaMemset(raw, 0xA5, bytes + 2 * kGuard));
    CUDA_CHECK(cudaMemset(raw + kGuard, fill, bytes));
  }
  ~DevBuf() { cudaFree(raw); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(raw + kGuard);
  }
  void put(const void* src) { CUDA_CHECK(cudaMemcpy(raw + kGuard, src, bytes, cudaMemcpyHostToDevice)); }
  template <class T>
  std::vector<T> get() {
    std::vector<T> v(bytes / sizeof(T));
    CUDA_CHECK(cudaMemcpy(v.data(), raw + kGuard, bytes, cudaMemcpyDeviceToHost));
    return v;
  }
  bool guards_intact() {
    std::vector<unsigned char> h(bytes + 2 * kGuard);
    CUDA_CHECK(cudaMemcpy(h.data(), raw, h.size(), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < kGuard; i++)
      if (h[i] != 0xA5 || h[h.size() - 1 - i] != 0xA5) return false;
    return true;
  }
};

template <class T>
Result run_case(const Case& c, uint64_t seed) {
  const int64_t V = c.V, D = c.D;
  const Reference<T> ref = make_reference<T>(c, seed);
  const std::vector<int64_t>& b = ref.bounds;
  DevBuf zd(V * D * sizeof(T), 0);
  zd.put(ref.z.data());
  DevBuf lse_all(V * sizeof(float), 0xFF);
  std::vector<float> lse_host(V, NAN);
  double loss = 0;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    const int ks = gpu::ntxent_resolve_ksplit(c.ksplit, V, R);
    DevBuf ws(gpu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ks), 0xFF);
    DevBuf lg(sizeof(float), 0xFF), lse(std::max<int64_t>(R, 1) * sizeof(float), 0xFF);
    gpu::ntxent_forward(lg.as<float>(), lse.as<float>(), zd.as<T>(), ws.as<unsigned char>(), V, D, c.tau, b[r],
                        b[r + 1], ks, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    REQUIRE(lg.guards_intact());
    REQUIRE(lse.guards_intact());
    REQUIRE(ws.guards_intact());
    const float l = lg.get<float>()[0];
    REQUIRE(std::isfinite(l));
    loss += l;
    const std::vector<float> lr = lse.get<float>();
    for (int64_t i = 0; i < R; i++) lse_host[b[r] + i] = lr[i];
  }
  lse_all.put(lse_host.data());
  DevBuf dl(sizeof(float), 0);
  const float dlf = static_cast<float>(ref.dloss);
  dl.put(&dlf);
  Result res;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    if (R == 0) continue;
    const int ks = gpu::ntxent_resolve_ksplit(c.ksplit, V, R);
    DevBuf ws(gpu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ks), 0xFF);
    const std::vector<T> base = ref.dz_base(b[r], R, D);
    DevBuf dz(R * D * sizeof(T), 0);
    dz.put(base.data());
    gpu::ntxent_backward(dz.as<T>(), zd.as<T>(), lse_all.as<float>(), dl.as<float>(), ws.as<unsigned char>(), V, D,
                         c.tau, b[r], b[r + 1], ks, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    REQUIRE(dz.guards_intact());
    REQUIRE(ws.guards_intact());
    const std::vector<T> got = dz.get<T>();
    res.add_grad(ref, base, got.data(), b[r], R, D);
  }
  res.finish(ref, c, loss, lse_host.data());
  return res;
}

template <class T>
void check_case(const Case& c, uint64_t seed) {
  const Result r = run_case<T>(c, seed);
  std::printf("ntxent gpu %s 2N=%lld d=%lld tau=%g ksplit=%d ranks=%d: loss err %.3g, lse err %.3g, grad rel err %.3g\n",
              std::is_same_v<T, bf16> ? "bf16" : "fp32", static_cast<long long>(c.V), static_cast<long long>(c.D), c.tau,
              c.ksplit, c.ranks, r.loss_err, r.lse_err, r.grad_err);
  check_result<T>(c, r);
}

// the sizes only a GPU runs (the emulated table: ntxent_case::table())
const Case kLarge[] = {
    {1000, 128, 0.1, 0, 1},   // not a multiple of any tile
    {1000, 64, 0.05, 0, 3},   // uneven ranks
    {4096, 128, 0.1, 0, 1},   // the SimCLR shape
    {4096, 128, 0.5, 7, 1},   // explicit odd key split
    {1000, 2048, 0.5, 0, 1},  // 16 slabs
};

}  // namespace

TEST_CASE("ntxent gpu: bf16 kernels match the CPU reference (emulated table)", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const Case& c : table()) check_case<bf16>(c, seed++);
}

TEST_CASE("ntxent gpu: fp32 kernels match the CPU reference (emulated table)", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (const Case& c : table()) check_case<float>(c, seed++);
}

TEST_CASE("ntxent gpu: 1000 and 4096 views, d up to 2048", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  uint64_t seed = 200;
  for (const Case& c : kLarge) {
    check_case<bf16>(c, seed++);
    check_case<float>(c, seed++);
  }
  check_case<bf16>(Case{4096, 2048, 0.1, 0, 1}, seed++);
}

TEST_CASE("ntxent gpu: the op on CUDA tensors (autograd) matches the CPU op", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  using namespace simclr;
  const int64_t V = 300, D = 96;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> v(V * D);
  for (auto& x : v) x = nd(rng);
  for (DType dt : {DType::f32, DType::bf16}) {
    INFO(dtype_name(dt));
    Tensor zc = Tensor::from_vector(v, {V, D}).to(dt).to(DType::f64);  // the values the GPU sees
    Tensor zc_req = zc.clone().set_requires_grad();
    Tensor lc = ntxent(zc_req, 0.1);
    backward(lc);
    Tensor zg = Tensor::from_vector(v, {V, D}).to(dt).to(Device::cuda(0)).set_requires_grad();
    Tensor lg = ntxent(zg, 0.1);
    CHECK(lg.dtype() == DType::f32);
    CHECK(lg.device().is_cuda());
    backward(lg);
    const double tol = (dt == DType::bf16 ? 2 * std::ldexp(1.0, -8) : 2 * std::ldexp(1.0, -15)) / 0.1;
    CHECK(std::abs(lg.item() - lc.item()) <= tol);
    const std::vector<float> g = zg.grad().to_floats();
    double e = 0, m = 0;
    for (int64_t i = 0; i < V * D; i++) {
      e = std::max(e, std::abs(g[i] - zc_req.grad().at(i)));
      m = std::max(m, std::abs(zc_req.grad().at(i)));
    }
    CHECK(e / m <= (dt == DType::bf16 ? 1.5e-2 : 5e-5));
  }
  CHECK_THROWS_WITH(ntxent(Tensor::zeros({4, 3}, DType::f32, Device::cuda(0)), 0.01), Catch::Contains("tau"));
}

TEST_CASE("ntxent gpu: identical embeddings and the unfused baseline", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  // closed form: identical rows -> loss log(V-1), zero gradient; the baseline agrees
  const int64_t V = 1024, D = 128;
  std::vector<float> z(V * D);
  for (int64_t i = 0; i < V; i++)
    for (int64_t k = 0; k < D; k++) z[i * D + k] = (1.0f + 0.25f * (i % 4)) * std::sin(0.1f * k + 1.0f);
  DevBuf zd(V * D * 4, 0), loss(4, 0xFF), lse(V * 4, 0xFF), dz(V * D * 4, 0), one(4, 0);
  zd.put(z.data());
  const float onef = 1.0f;
  one.put(&onef);
  const int ks = gpu::ntxent_resolve_ksplit(0, V, V);
  {
    DevBuf ws(gpu::ntxent_workspace_bytes(V, D, V, true, ks), 0xFF);
    gpu::ntxent_forward(loss.as<float>(), lse.as<float>(), zd.as<float>(), ws.as<unsigned char>(), V, D, 0.1, 0, V, ks,
                        nullptr);
    gpu::ntxent_backward(dz.as<float>(), zd.as<float>(), lse.as<float>(), one.as<float>(), ws.as<unsigned char>(), V, D,
                         0.1, 0, V, ks, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    CHECK(std::abs(loss.get<float>()[0] - std::log(1023.0)) < 1e-4);
    float gmax = 0;
    for (float g : dz.get<float>()) gmax = std::max(gmax, std::abs(g));
    CHECK(gmax < 1e-4);
  }
  // the baseline on random embeddings against the CPU reference
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : z) x = nd(rng);
  zd.put(z.data());
  std::vector<double> z64(z.begin(), z.end()), rows(V), lr(V), g64(V * D, 0.0);
  simclr::cpu::ntxent_forward(rows.data(), lr.data(), z64.data(), V, D, 0.2, 0, V);
  simclr::cpu::ntxent_backward(g64.data(), z64.data(), lr.data(), 1.0, V, D, 0.2, 0, V);
  double lref = 0;
  for (double r : rows) lref += r / V;
  DevBuf ws(gpu::ntxent_unfused_workspace_bytes(V, D, true), 0xFF), dz2(V * D * 4, 0);
  gpu::ntxent_unfused_forward(loss.as<float>(), lse.as<float>(), zd.as<float>(), ws.as<unsigned char>(), V, D, 0.2,
                              nullptr);
  gpu::ntxent_unfused_backward(dz2.as<float>(), zd.as<float>(), lse.as<float>(), one.as<float>(),
                               ws.as<unsigned char>(), V, D, 0.2, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  CHECK(std::abs(loss.get<float>()[0] - lref) < 1e-4);
  const std::vector<float> g = dz2.get<float>();
  double e = 0, m = 0;
  for (int64_t i = 0; i < V * D; i++) {
    e = std::max(e, std::abs(g[i] - g64[i]));
    m = std::max(m, std::abs(g64[i]));
  }
  CHECK(e / m < 1e-3);  // fp32 cuBLAS (no TF32) and fp32 softmax
  CHECK(ws.guards_intact());
}
