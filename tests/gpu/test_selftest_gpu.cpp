// tests/gpu/test_selftest_gpu.cpp - the self-test kernels of
// kernels/cuda/selftest.cu on a real GPU, against the same host references as
// their emulated run (tests/emu/test_emulator.cpp). This is what confirms the
// emulator's assumptions on hardware: the shuffle semantics, and the
// mma / ldmatrix fragment layouts documented in kernels/cuda/mma.cuh.
// Without a device every test prints "SKIPPED: <reason>" (ctest: skipped).
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "engine/cuda_check.h"
#include "engine/device.h"
#include "kernels/cuda/selftest.h"
#include "tests/selftest_ref.h"

namespace gpu = simclr::gpu;
namespace ref = simclr::selftest_ref;

namespace {

bool have_gpu() {
  if (simclr::cuda_available()) return true;
  std::printf("SKIPPED: %s\n", simclr::cuda_unavailable_reason().c_str());
  return false;
}

// A device copy of a host vector; back() copies it home.
template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(const std::vector<T>& h) : n(h.size()) {
    CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
    CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> back() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

}  // namespace

TEST_CASE("gpu selftest: block reduction", "[gpu]") {
  if (!have_gpu()) return;
  for (int threads : {32, 256, 1024}) {
    for (int n : {1, 1000, 3 * threads + 7}) {
      auto x = ref::random_floats(static_cast<size_t>(n), static_cast<uint32_t>(n + threads));
      const int blocks = (n + threads - 1) / threads;
      DevBuf<float> dx(x), dp(std::vector<float>(static_cast<size_t>(blocks), -1.0f));
      gpu::selftest_block_sum(dp.p, dx.p, n, threads, nullptr);
      auto partial = dp.back();
      for (int b = 0; b < blocks; ++b) {
        double want = 0.0, mag = 0.0;
        for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) {
          want += x[static_cast<size_t>(i)];
          mag += std::fabs(x[static_cast<size_t>(i)]);
        }
        CHECK(std::fabs(partial[static_cast<size_t>(b)] - want) <= 1e-6 * mag + 1e-7);
      }
    }
  }
}

TEST_CASE("gpu selftest: warp reduction and every shuffle kind and width", "[gpu]") {
  if (!have_gpu()) return;
  const int n = 320;
  auto x = ref::random_floats(n, 7);
  DevBuf<float> dx(x), dout(std::vector<float>(n, -1.0f));
  gpu::selftest_warp_sum(dout.p, dx.p, n, nullptr);
  auto out = dout.back();
  for (int w = 0; w < n / 32; ++w) {
    double want = 0.0;
    for (int l = 0; l < 32; ++l) want += x[static_cast<size_t>(w * 32 + l)];
    for (int l = 0; l < 32; ++l) CHECK(std::fabs(out[static_cast<size_t>(w * 32 + l)] - want) < 1e-5);
  }

  std::vector<float> v(32);
  for (int l = 0; l < 32; ++l) v[static_cast<size_t>(l)] = 100.0f + static_cast<float>(l);
  DevBuf<float> dv(v), ds(std::vector<float>(32 * simclr::selftest::kShuffleCases, -1.0f));
  gpu::selftest_shuffles(ds.p, dv.p, nullptr);
  auto s = ds.back();
  const int widths[5] = {32, 16, 8, 4, 2};
  for (int lane = 0; lane < 32; ++lane) {
    const float* o = &s[static_cast<size_t>(lane * simclr::selftest::kShuffleCases)];
    for (int w = 0; w < 5; ++w) {
      INFO("lane " << lane << " width " << widths[w]);
      CHECK(o[w] == ref::shfl(v.data(), lane, (lane * 7 + 3) & 31, widths[w]));
      CHECK(o[5 + w] == ref::shfl_up(v.data(), lane, 3, widths[w]));
      CHECK(o[10 + w] == ref::shfl_down(v.data(), lane, 3, widths[w]));
      CHECK(o[15 + w] == ref::shfl_xor(v.data(), lane, 5, widths[w]));
    }
    CHECK(o[20] == (lane < 16 ? ref::shfl_down(v.data(), lane, 2, 16) : v[static_cast<size_t>(lane)]));
  }
}

TEST_CASE("gpu selftest: transpose and atomic histogram", "[gpu]") {
  if (!have_gpu()) return;
  for (auto [M, N] : {std::pair{67, 45}, std::pair{1, 1}, std::pair{32, 32}, std::pair{5, 70}}) {
    auto in = ref::random_floats(static_cast<size_t>(M * N), static_cast<uint32_t>(M * 100 + N));
    DevBuf<float> din(in), dout(std::vector<float>(static_cast<size_t>(M * N), -7.0f));
    gpu::selftest_transpose(dout.p, din.p, M, N, nullptr);
    auto out = dout.back();
    int bad = 0;
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) bad += out[static_cast<size_t>(c * M + r)] != in[static_cast<size_t>(r * N + c)];
    CHECK(bad == 0);
  }
  for (int bins : {10, 256}) {
    const int n = 1013;
    std::mt19937 rng(static_cast<uint32_t>(bins));
    std::vector<int> v(n), ref_hist(static_cast<size_t>(bins), 0);
    for (int& x : v) x = static_cast<int>(rng() % 100000);
    for (int x : v) ++ref_hist[static_cast<size_t>(x % bins)];
    DevBuf<int> dv(v), dh(std::vector<int>(static_cast<size_t>(bins), 0)), dm(std::vector<int>(1, -1));
    gpu::selftest_histogram(dh.p, dm.p, dv.p, n, bins, nullptr);
    CHECK(dh.back() == ref_hist);
    CHECK(dm.back()[0] == *std::max_element(v.begin(), v.end()));
  }
}

TEST_CASE("gpu selftest: mma and ldmatrix fragment layouts", "[gpu][mma]") {
  if (!have_gpu()) return;
  for (uint32_t seed : {1u, 2u, 3u}) {
    auto af = ref::random_floats(256, seed), bf = ref::random_floats(128, seed + 10), c = ref::random_floats(128, seed + 20);
    std::vector<uint16_t> a(256), b(128);
    for (int i = 0; i < 256; ++i) a[static_cast<size_t>(i)] = ref::to_bf16_bits(af[static_cast<size_t>(i)]);
    for (int i = 0; i < 128; ++i) b[static_cast<size_t>(i)] = ref::to_bf16_bits(bf[static_cast<size_t>(i)]);
    DevBuf<uint16_t> da(a), db(b);
    DevBuf<float> dc(c), dd(std::vector<float>(128, 0.0f)), dd2(std::vector<float>(128, 0.0f));
    DevBuf<uint32_t> dr(std::vector<uint32_t>(256, 0));
    gpu::selftest_mma_bf16(dd.p, da.p, db.p, dc.p, nullptr);
    gpu::selftest_mma_bf16_ldmatrix(dd2.p, dr.p, da.p, db.p, dc.p, nullptr);
    auto d = dd.back(), d2 = dd2.back();
    double want[128], mag[128];
    ref::mma_bf16_ref(want, mag, a.data(), b.data(), c.data());
    for (int i = 0; i < 128; ++i) {
      INFO("row " << i / 8 << " col " << i % 8);
      // hardware summation order differs from the emulator's: a few fp32 ulps
      CHECK(std::fabs(d[static_cast<size_t>(i)] - want[i]) <= 1e-5 * mag[i]);
      CHECK(d2[static_cast<size_t>(i)] == d[static_cast<size_t>(i)]);
    }
  }
  auto a = ref::random_floats(128, 5), b = ref::random_floats(64, 6), c = ref::random_floats(128, 7);
  DevBuf<float> da(a), db(b), dc(c), dd(std::vector<float>(128, 0.0f));
  gpu::selftest_mma_tf32(dd.p, da.p, db.p, dc.p, nullptr);
  auto d = dd.back();
  double want[128], mag[128];
  ref::mma_tf32_ref(want, mag, a.data(), b.data(), c.data());
  for (int i = 0; i < 128; ++i) CHECK(std::fabs(d[static_cast<size_t>(i)] - want[i]) <= 1e-5 * mag[i]);
}

TEST_CASE("gpu selftest: cp.async with zero fill", "[gpu]") {
  if (!have_gpu()) return;
  const int rows = 37, valid = 30;
  auto in = ref::random_floats(static_cast<size_t>(rows * 8), 11);
  DevBuf<float> din(in), dout(std::vector<float>(static_cast<size_t>(rows * 8), -1.0f));
  gpu::selftest_cp_async(dout.p, din.p, rows, valid, nullptr);
  auto out = dout.back();
  for (int i = 0; i < rows * 8; ++i) CHECK(out[static_cast<size_t>(i)] == (i < valid * 8 ? in[static_cast<size_t>(i)] : 0.0f));
}
