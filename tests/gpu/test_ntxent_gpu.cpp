// tests/gpu/test_ntxent_gpu.cpp - the special tests of the fused NT-Xent
// kernels on a real GPU that are not rows of the op table (the table's kernel
// rows, 2N = 2 .. 4096 and d up to 2048, and the op on CUDA tensors run in
// tests/gpu/test_op_table_gpu.cpp): identical embeddings (closed form), the
// unfused cuBLAS baseline against the CPU reference, and the op's error for a
// temperature the fused kernel cannot take. Buffers are guarded and
// NaN-poisoned (tests/guarded.h).
// Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "kernels/ntxent.h"
#include "losses/losses.h"
#include "tests/guarded.h"
#include "tests/skip.h"

namespace gpu = simclr::gpu;
using simclr::Device;
using simclr::test::Guarded;

TEST_CASE("ntxent gpu: the op rejects a temperature below the fused kernel's bound", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  using namespace simclr;
  CHECK_THROWS_WITH(ntxent(Tensor::zeros({4, 3}, DType::f32, Device::cuda(0)), 0.01), Catch::Contains("tau"));
}

TEST_CASE("ntxent gpu: identical embeddings and the unfused baseline", "[gpu][ntxent]") {
  SKIP_WITHOUT_GPU();
  // closed form: identical rows -> loss log(V-1), zero gradient; the baseline agrees
  const int64_t V = 1024, D = 128;
  std::vector<float> z(V * D);
  for (int64_t i = 0; i < V; i++)
    for (int64_t k = 0; k < D; k++) z[i * D + k] = (1.0f + 0.25f * (i % 4)) * std::sin(0.1f * k + 1.0f);
  const Device dev = Device::cuda(0);
  void* stream = simclr::cuda_current_stream(0);
  Guarded<float> zd(z, dev);
  const Guarded<float> loss(1, 0xFF, dev), lse(V, 0xFF, dev), dz(V * D, 0, dev);
  const Guarded<float> one(std::vector<float>{1.0f}, dev);
  const int ks = gpu::ntxent_resolve_ksplit(0, V, V);
  {
    const Guarded<unsigned char> ws(gpu::ntxent_workspace_bytes(V, D, V, true, ks), 0xFF, dev);
    gpu::ntxent_forward(loss.data(), lse.data(), zd.data(), ws.data(), V, D, 0.1, 0, V, ks, stream);
    gpu::ntxent_backward(dz.data(), zd.data(), lse.data(), one.data(), ws.data(), V, D, 0.1, 0, V, ks, stream);
    CHECK(std::abs(loss.get()[0] - std::log(1023.0)) < 1e-4);
    float gmax = 0;
    for (float g : dz.get()) gmax = std::max(gmax, std::abs(g));
    CHECK(gmax < 1e-4);
    CHECK(ws.guards_intact());
    CHECK(dz.guards_intact());
  }
  // the baseline on random embeddings against the CPU reference
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : z) x = nd(rng);
  zd.put(z);
  std::vector<double> z64(z.begin(), z.end()), rows(V), lr(V), g64(V * D, 0.0);
  simclr::cpu::ntxent_forward(rows.data(), lr.data(), z64.data(), V, D, 0.2, 0, V);
  simclr::cpu::ntxent_backward(g64.data(), z64.data(), lr.data(), 1.0, V, D, 0.2, 0, V);
  double lref = 0;
  for (double r : rows) lref += r / V;
  const Guarded<unsigned char> ws(gpu::ntxent_unfused_workspace_bytes(V, D, true), 0xFF, dev);
  const Guarded<float> dz2(V * D, 0, dev);
  gpu::ntxent_unfused_forward(loss.data(), lse.data(), zd.data(), ws.data(), V, D, 0.2, stream);
  gpu::ntxent_unfused_backward(dz2.data(), zd.data(), lse.data(), one.data(), ws.data(), V, D, 0.2, stream);
  CHECK(std::abs(loss.get()[0] - lref) < 1e-4);
  const std::vector<float> g = dz2.get();
  double e = 0, m = 0;
  for (int64_t i = 0; i < V * D; i++) {
    e = std::max(e, std::abs(g[i] - g64[i]));
    m = std::max(m, std::abs(g64[i]));
  }
  CHECK(e / m < 1e-3);  // fp32 cuBLAS (no TF32) and fp32 softmax
  CHECK(ws.guards_intact());
  CHECK(dz2.guards_intact());
  CHECK(loss.guards_intact());
  CHECK(lse.guards_intact());
}
