// tests/emu/test_emulator.cpp - the kernel emulator itself (engine/cuda_emu.*).
//
// Correct kernels (kernels/cuda/selftest.cu, also run on a GPU by
// tests/gpu/test_selftest_gpu.cpp) against plain host loops; broken kernels
// (defined here, emulator only) must be REPORTED with kernel, block and
// thread named. ctest runs this binary with EMU_ORDER=forward and =reverse.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/selftest.h"
#include "tests/selftest_ref.h"

using Catch::Matchers::Contains;
namespace emu = simclr::emu;
namespace ref = simclr::selftest_ref;

namespace {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const simclr::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ============================================================ kernels that are wrong on purpose
namespace simclr::emu {

__global__ void bad_divergent_barrier(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}
__global__ void bad_two_barriers(float* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}
__global__ void bad_early_return(float* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
__global__ void bad_shared_index(float* out) {
  SIMCLR_SHARED(float, tile, [32]);
  tile[threadIdx.x + 1] = 1.0f;
  out[threadIdx.x] = tile[threadIdx.x];
}
__global__ void bad_shared_index_2d(float* out) {
  SIMCLR_SHARED(float, grid2, [4][8]);
  grid2[threadIdx.x % 4][threadIdx.x == 9 ? 8 : threadIdx.x % 8] = 1.0f;  // thread 9: column 8 of [8]
  out[threadIdx.x] = 0.0f;
}
__global__ void bad_dynamic_index(float* out) {
  SIMCLR_DYNAMIC_SHARED(float, s);
  auto p = s + 16;
  p[threadIdx.x == 20 ? 16 : threadIdx.x % 16] = 1.0f;  // thread 20: 16 + 16 = 32 floats launched
  out[threadIdx.x] = 0.0f;
}
__global__ void bad_dynamic_raw_write(float* out) {
  SIMCLR_DYNAMIC_SHARED(float, s);
  float* raw = s;  // unchecked pointer: caught by the guard bytes after the block
  if (threadIdx.x == 3) raw[32 + threadIdx.x] = 1.0f;
  out[threadIdx.x] = 0.0f;
}
__global__ void bad_missing_lane(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x == 5) return;
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
__global__ void bad_nonexistent_lanes(float* out) {
  float v = __shfl_down_sync(0xffffffffu, 1.0f, 1);  // block of 48: warp 1 has 16 lanes
  out[threadIdx.x] = v;
}
__global__ void bad_mismatched_collectives(float* out) {
  float v = 1.0f;
  if (threadIdx.x % 2) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else v = static_cast<float>(__ballot_sync(0xffffffffu, 1));
  out[threadIdx.x] = v;
}
__global__ void bad_deadlock(float* out) {
  float v = 1.0f;
  if (threadIdx.x < 16) v = __shfl_sync(0xffffffffu, v, 0);
  else __syncthreads();
  out[threadIdx.x] = v;
}
__global__ void bad_width(float* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0, 12); }
__global__ void plain_kernel(float* out) { out[blockIdx.x * blockDim.x + threadIdx.x] = 2.0f; }
__global__ void barrier_kernel(float* out) {
  out[threadIdx.x] = 1.0f;
  __syncthreads();
}
__global__ void throwing_kernel(float* out, int n) {
  SIMCLR_CHECK(n > 0, "n must be positive, got ", n);
  out[threadIdx.x] = 1.0f;
}
__global__ void big_static_shared(float* out) {
  SIMCLR_SHARED(float, big, [10 * 1024]);  // 40 KiB
  big[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = big[threadIdx.x];
}
__global__ void dynamic_shared_kernel(float* out) {
  SIMCLR_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}
// Missing barrier between the write and the neighbour's read: the result
// depends on the thread order.
__global__ void racy_rotate(int* out) {
  SIMCLR_SHARED(int, buf, [64]);
  buf[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[threadIdx.x] = buf[(threadIdx.x + 1) % 64];
}
__global__ void fixed_rotate(int* out) {
  SIMCLR_SHARED(int, buf, [64]);
  buf[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = buf[(threadIdx.x + 1) % 64];
}
// cp.async without the wait: the emulator lands copies only at the wait.
__global__ void cp_async_missing_wait(float* out, const float* in) {
  SIMCLR_SHARED(float, stage, [32][4]);
  cp_async_16(&stage[threadIdx.x][0], in + 4 * threadIdx.x);
  cp_async_commit();
  __syncthreads();  // not enough: cp.async needs cp_async_wait first
  out[threadIdx.x] = stage[threadIdx.x][0];
  cp_async_wait<0>();
}
__global__ void block_votes(int* out) {
  const int t = threadIdx.x;
  out[0 * 64 + t] = __syncthreads_count(t % 3 == 0);
  out[1 * 64 + t] = __syncthreads_and(t < 64);
  out[2 * 64 + t] = __syncthreads_or(t == 17);
  out[3 * 64 + t] = __syncthreads_and(t != 40);
  out[4 * 64 + t] = static_cast<int>(__ballot_sync(0xffffffffu, t % 4 == 1));
  out[5 * 64 + t] = __any_sync(0xffffffffu, t == 33);
  out[6 * 64 + t] = __all_sync(0xffffffffu, t < 63);
  out[7 * 64 + t] = static_cast<int>(__reduce_add_sync(0xffffffffu, static_cast<unsigned>(t)));
}
__global__ void partial_mask_poison(float* out) {
  // lanes 0..7 shuffle with mask 0xff; lane 6 reads lane 10, outside the mask:
  // undefined on a GPU, 0xFF bytes (NaN) here.
  const int lane = threadIdx.x;
  float v = static_cast<float>(lane);
  if (lane < 8) v = __shfl_down_sync(0xffu, v, 4);
  out[lane] = v;
}
__global__ void timing_kernel(float* out, const float* in) {
  SIMCLR_SHARED(float, buf, [256]);
  const int t = threadIdx.x;
  buf[t] = in[blockIdx.x * 256 + t];
  __syncthreads();
  for (int s = 128; s >= 32; s /= 2) {  // 3 more barriers: 4 in all
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  float v = t < 32 ? buf[t] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (t == 0) out[blockIdx.x] = v;
}
__global__ void plain_scale(float* out, const float* in, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0f * in[i];
}

// Device-side math, bf16/half and vector types under the emulator.
__global__ void math_kernel(float* out, const float4* v4) {
  const float x = 0.75f;
  const __nv_bfloat16 hb = __float2bfloat16(1.5f);
  const __half hh = __float2half(-2.25f);
  const float4 q = __ldg(v4);
  const float4 m = make_float4(q.w, q.z, q.y, q.x);
  const __nv_bfloat162 pair = __floats2bfloat162_rn(3.0f, -4.0f);
  float r[24] = {__expf(x), exp2f(x), __fdividef(3.0f, 4.0f), rsqrtf(4.0f), fmaf(2.0f, 3.0f, 1.0f),
                 __frcp_rn(8.0f), __saturatef(1.7f), __logf(x), static_cast<float>(__float2int_rn(2.5f)),
                 __bfloat162float(__hfma(hb, hb, hb)), __bfloat162float(hexp(__float2bfloat16(0.0f))),
                 __bfloat162float(hsqrt(__float2bfloat16(4.0f))), __half2float(hh), __half2float(__hfma(hh, hh, hh)),
                 __low2float(pair), __high2float(pair), m.x + 10.0f * m.w, static_cast<float>(__popc(0xF0F0u)),
                 static_cast<float>(__clz(1)), static_cast<float>(__ffs(8)), static_cast<float>(__brev(1u) >> 28),
                 static_cast<float>(max(3, 7) + min(2u, 5u)), max(-1.0f, 2.0f), __int_as_float(__float_as_int(x))};
  for (int i = 0; i < 24; ++i) out[threadIdx.x * 24 + i] = r[i];
}

// Exactly one thread wins the compare-and-swap; everyone counts in.
__global__ void cas_kernel(int* winner, int* count, unsigned long long* big) {
  const int me = static_cast<int>(threadIdx.x) + 1;
  if (atomicCAS(winner, 0, me) == 0) atomicAdd(count, 100);
  atomicAdd(count, 1);
  atomicMax(big, 1000ull + threadIdx.x);
}

}  // namespace simclr::emu

TEST_CASE("emulator: atomicCAS has one winner and EMU_ORDER is validated", "[emu]") {
  int winner = 0, count = 0;
  unsigned long long big = 0;
  launch_nobarrier(emu::cas_kernel, dim3(1), dim3(64), 0, nullptr, &winner, &count, &big);
  CHECK(count == 164);
  CHECK(big == 1063ull);
  CHECK((winner >= 1 && winner <= 64));
  if (emu::current_order() == emu::Order::forward) CHECK(winner == 1);  // thread 0 runs first
  if (emu::current_order() == emu::Order::reverse) CHECK(winner == 64);

  const char* old = std::getenv("EMU_ORDER");
  std::string saved = old ? old : "";
  setenv("EMU_ORDER", "sideways", 1);
  CHECK_THAT(error_of([] { emu::reset_order_from_env(); }), Contains("EMU_ORDER='sideways'"));
  setenv("EMU_ORDER", "seeded:17", 1);
  emu::reset_order_from_env();
  CHECK(emu::current_order() == emu::Order::seeded);
  if (old) setenv("EMU_ORDER", saved.c_str(), 1);
  else unsetenv("EMU_ORDER");
  emu::reset_order_from_env();
}

TEST_CASE("emulator: math intrinsics, bf16/half and vector types on the host", "[emu]") {
  std::vector<float> out(2 * 24, 0.0f);
  const float4 v{1.0f, 2.0f, 3.0f, 4.0f};
  launch_nobarrier(emu::math_kernel, dim3(1), dim3(2), 0, nullptr, out.data(), &v);
  const float want[24] = {std::exp(0.75f), std::exp2(0.75f), 0.75f, 0.5f, 7.0f, 0.125f, 1.0f, std::log(0.75f), 2.0f,
                          3.75f, 1.0f, 2.0f, -2.25f, 2.8125f, 3.0f, -4.0f, 4.0f + 10.0f * 1.0f, 8.0f, 31.0f, 4.0f,
                          8.0f, 9.0f, 2.0f, 0.75f};
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < 24; ++i) {
      INFO("value " << i);
      CHECK(out[static_cast<size_t>(t * 24 + i)] == Approx(want[i]).epsilon(1e-6));
    }
}

// ============================================================ correct kernels (selftest.cu)
TEST_CASE("emulator: block reduction matches the host sum at several block sizes", "[emu]") {
  for (int threads : {32, 256, 1024}) {
    for (int n : {1, 1000, 3 * threads + 7}) {
      auto x = ref::random_floats(static_cast<size_t>(n), static_cast<uint32_t>(n + threads));
      const int blocks = (n + threads - 1) / threads;
      std::vector<float> partial(static_cast<size_t>(blocks), -1.0f);
      emu::selftest_block_sum(partial.data(), x.data(), n, threads, nullptr);
      for (int b = 0; b < blocks; ++b) {
        double ref = 0.0, mag = 0.0;
        for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) {
          ref += x[static_cast<size_t>(i)];
          mag += std::fabs(x[static_cast<size_t>(i)]);
        }
        INFO("threads " << threads << " n " << n << " block " << b);
        CHECK(std::fabs(partial[static_cast<size_t>(b)] - ref) <= 1e-6 * mag + 1e-7);
      }
    }
  }
}

TEST_CASE("emulator: warp butterfly reduction gives every lane its warp's sum", "[emu]") {
  const int n = 320;
  auto x = ref::random_floats(n, 7);
  std::vector<float> out(n, -1.0f);
  emu::selftest_warp_sum(out.data(), x.data(), n, nullptr);
  for (int w = 0; w < n / 32; ++w) {
    double ref = 0.0;
    for (int l = 0; l < 32; ++l) ref += x[static_cast<size_t>(w * 32 + l)];
    for (int l = 0; l < 32; ++l) CHECK(std::fabs(out[static_cast<size_t>(w * 32 + l)] - ref) < 1e-5);
  }
}

TEST_CASE("emulator: shuffles follow CUDA semantics for every kind, width and a partial mask", "[emu]") {
  std::vector<float> x(32);
  for (int l = 0; l < 32; ++l) x[static_cast<size_t>(l)] = 100.0f + static_cast<float>(l);
  std::vector<float> out(32 * simclr::selftest::kShuffleCases, -1.0f);
  emu::selftest_shuffles(out.data(), x.data(), nullptr);
  const int widths[5] = {32, 16, 8, 4, 2};
  for (int lane = 0; lane < 32; ++lane) {
    const float* o = &out[static_cast<size_t>(lane * simclr::selftest::kShuffleCases)];
    for (int w = 0; w < 5; ++w) {
      INFO("lane " << lane << " width " << widths[w]);
      CHECK(o[w] == ref::shfl(x.data(), lane, (lane * 7 + 3) & 31, widths[w]));
      CHECK(o[5 + w] == ref::shfl_up(x.data(), lane, 3, widths[w]));
      CHECK(o[10 + w] == ref::shfl_down(x.data(), lane, 3, widths[w]));
      CHECK(o[15 + w] == ref::shfl_xor(x.data(), lane, 5, widths[w]));
    }
    CHECK(o[20] == (lane < 16 ? ref::shfl_down(x.data(), lane, 2, 16) : x[static_cast<size_t>(lane)]));
  }
  // Spot values written out by hand: xor 5 at width 4 from lane 2 would read
  // lane 7 (a later segment) -> own value; from lane 6 reads lane 3 (earlier).
  CHECK(out[2 * 21 + 15 + 3] == 102.0f);
  CHECK(out[6 * 21 + 15 + 3] == 103.0f);
  CHECK(out[13 * 21 + 5 + 2] == 110.0f);  // up 3, width 8: lane 13 -> lane 10
  CHECK(out[10 * 21 + 5 + 2] == 110.0f);  // lane 10 % 8 = 2 < 3 -> own
}

TEST_CASE("emulator: a source lane outside a partial mask reads as NaN", "[emu]") {
  std::vector<float> out(32, 0.0f);
  launch(emu::partial_mask_poison, dim3(1), dim3(32), 0, nullptr, out.data());
  for (int l = 0; l < 8; ++l) {
    INFO("lane " << l);
    if (l + 4 < 8) CHECK(out[static_cast<size_t>(l)] == static_cast<float>(l + 4));
    else CHECK(std::isnan(out[static_cast<size_t>(l)]));
  }
  for (int l = 8; l < 32; ++l) CHECK(out[static_cast<size_t>(l)] == static_cast<float>(l));
}

TEST_CASE("emulator: shared-memory transpose at odd sizes", "[emu]") {
  for (auto [M, N] : {std::pair{67, 45}, std::pair{1, 1}, std::pair{32, 32}, std::pair{5, 70}}) {
    auto in = ref::random_floats(static_cast<size_t>(M * N), static_cast<uint32_t>(M * 100 + N));
    std::vector<float> out(static_cast<size_t>(M * N), -7.0f);
    emu::selftest_transpose(out.data(), in.data(), M, N, nullptr);
    int bad = 0;
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) bad += out[static_cast<size_t>(c * M + r)] != in[static_cast<size_t>(r * N + c)];
    INFO(M << "x" << N);
    CHECK(bad == 0);
  }
}

TEST_CASE("emulator: atomic histogram and atomicMax", "[emu]") {
  for (int bins : {10, 256}) {
    const int n = 1013;
    std::mt19937 rng(static_cast<uint32_t>(bins));
    std::vector<int> v(n);
    for (int& x : v) x = static_cast<int>(rng() % 100000);
    std::vector<int> hist(static_cast<size_t>(bins), 0), ref(static_cast<size_t>(bins), 0);
    int max_v = -1;
    for (int x : v) ++ref[static_cast<size_t>(x % bins)];
    emu::selftest_histogram(hist.data(), &max_v, v.data(), n, bins, nullptr);
    CHECK(hist == ref);
    CHECK(max_v == *std::max_element(v.begin(), v.end()));
  }
}

TEST_CASE("emulator: block votes, ballots and warp reductions", "[emu]") {
  std::vector<int> out(8 * 64, -5);
  launch(emu::block_votes, dim3(1), dim3(64), 0, nullptr, out.data());
  for (int t = 0; t < 64; ++t) {
    INFO("thread " << t);
    CHECK(out[0 * 64 + t] == 22);  // t % 3 == 0 for t in 0..63
    CHECK(out[1 * 64 + t] == 1);
    CHECK(out[2 * 64 + t] == 1);
    CHECK(out[3 * 64 + t] == 0);
    CHECK(static_cast<unsigned>(out[4 * 64 + t]) == 0x22222222u);
    CHECK(out[5 * 64 + t] == (t >= 32 ? 1 : 0));
    CHECK(out[6 * 64 + t] == (t < 32 ? 1 : 0));
    CHECK(out[7 * 64 + t] == (t < 32 ? 496 : 1520));
  }
}

TEST_CASE("emulator: bf16 mma with formula-built fragments matches a host matmul", "[emu][mma]") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    auto af = ref::random_floats(16 * 16, seed), bf = ref::random_floats(16 * 8, seed + 10), c = ref::random_floats(16 * 8, seed + 20);
    std::vector<uint16_t> a(256), b(128);
    for (int i = 0; i < 256; ++i) a[static_cast<size_t>(i)] = ref::to_bf16_bits(af[static_cast<size_t>(i)]);
    for (int i = 0; i < 128; ++i) b[static_cast<size_t>(i)] = ref::to_bf16_bits(bf[static_cast<size_t>(i)]);
    std::vector<float> d(128, 0.0f), d2(128, 0.0f);
    std::vector<uint32_t> regs(32 * 8, 0);
    emu::selftest_mma_bf16(d.data(), a.data(), b.data(), c.data(), nullptr);
    emu::selftest_mma_bf16_ldmatrix(d2.data(), regs.data(), a.data(), b.data(), c.data(), nullptr);
    double want[128], mag[128];
    ref::mma_bf16_ref(want, mag, a.data(), b.data(), c.data());
    for (int i = 0; i < 128; ++i) {
      INFO("row " << i / 8 << " col " << i % 8);
      CHECK(std::fabs(d[static_cast<size_t>(i)] - want[i]) <= 1e-6 * mag[i]);
      CHECK(d2[static_cast<size_t>(i)] == d[static_cast<size_t>(i)]);
    }
    // ldmatrix registers against the fragment formulas: x4 of A = the A fragment,
    // x2.trans of B = the B fragment, x2 of A's left half = its rows g and g+8.
    for (int l = 0; l < 32; ++l) {
      for (int r = 0; r < 4; ++r) {
        const uint32_t want = a[static_cast<size_t>(emu::mma_bf16_a_row(l, 2 * r) * 16 + emu::mma_bf16_a_col(l, 2 * r))] |
                              uint32_t(a[static_cast<size_t>(emu::mma_bf16_a_row(l, 2 * r + 1) * 16 +
                                                             emu::mma_bf16_a_col(l, 2 * r + 1))])
                                  << 16;
        CHECK(regs[static_cast<size_t>(l * 8 + r)] == want);
      }
      for (int r = 0; r < 2; ++r) {
        const uint32_t want = b[static_cast<size_t>(emu::mma_bf16_b_k(l, 2 * r) * 8 + emu::mma_bf16_b_n(l, 2 * r))] |
                              uint32_t(b[static_cast<size_t>(emu::mma_bf16_b_k(l, 2 * r + 1) * 8 +
                                                             emu::mma_bf16_b_n(l, 2 * r + 1))])
                                  << 16;
        CHECK(regs[static_cast<size_t>(l * 8 + 4 + r)] == want);
        const int g = l >> 2, t = l & 3, row = g + 8 * r;
        const uint32_t want_x2 =
            a[static_cast<size_t>(row * 16 + 2 * t)] | uint32_t(a[static_cast<size_t>(row * 16 + 2 * t + 1)]) << 16;
        CHECK(regs[static_cast<size_t>(l * 8 + 6 + r)] == want_x2);
      }
    }
  }
}

TEST_CASE("emulator: tf32 mma matches a host matmul of tf32-rounded inputs", "[emu][mma]") {
  auto a = ref::random_floats(16 * 8, 5), b = ref::random_floats(8 * 8, 6), c = ref::random_floats(16 * 8, 7);
  std::vector<float> d(128, 0.0f);
  emu::selftest_mma_tf32(d.data(), a.data(), b.data(), c.data(), nullptr);
  double want[128], mag[128];
  ref::mma_tf32_ref(want, mag, a.data(), b.data(), c.data());
  int close_to_fp32 = 0;
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double ref32 = c[static_cast<size_t>(r * 8 + n)];
      for (int k = 0; k < 8; ++k) ref32 += double(a[static_cast<size_t>(r * 8 + k)]) * b[static_cast<size_t>(k * 8 + n)];
      CHECK(std::fabs(d[static_cast<size_t>(r * 8 + n)] - want[r * 8 + n]) <= 1e-6 * mag[r * 8 + n]);
      close_to_fp32 += std::fabs(d[static_cast<size_t>(r * 8 + n)] - ref32) <= 1e-6 * mag[r * 8 + n];
    }
  CHECK(close_to_fp32 < 128);  // the inputs really were rounded to tf32
}

TEST_CASE("emulator: cp.async with zero fill, and a missing wait is visible", "[emu]") {
  const int rows = 37, valid = 30;
  auto in = ref::random_floats(static_cast<size_t>(rows * 8), 11);
  std::vector<float> out(static_cast<size_t>(rows * 8), -1.0f);
  emu::selftest_cp_async(out.data(), in.data(), rows, valid, nullptr);
  for (int i = 0; i < rows * 8; ++i) CHECK(out[static_cast<size_t>(i)] == (i < valid * 8 ? in[static_cast<size_t>(i)] : 0.0f));

  std::vector<float> src(128, 3.0f), stale(32, 0.0f);
  launch(emu::cp_async_missing_wait, dim3(1), dim3(32), 0, nullptr, stale.data(), src.data());
  for (float v : stale) CHECK(std::isnan(v));  // read before the copy landed
}

TEST_CASE("emulator: dynamic shared memory and launch_nobarrier", "[emu]") {
  std::vector<float> out(128, -1.0f);
  launch(emu::dynamic_shared_kernel, dim3(1), dim3(128), 128 * sizeof(float), nullptr, out.data());
  for (int t = 0; t < 128; ++t) CHECK(out[static_cast<size_t>(t)] == static_cast<float>(127 - t));

  const int n = 1000;
  auto in = ref::random_floats(n, 3);
  std::vector<float> y(n, 0.0f);
  launch_nobarrier(emu::plain_scale, dim3((n + 255) / 256), dim3(256), 0, nullptr, y.data(), in.data(), n);
  for (int i = 0; i < n; ++i) CHECK(y[static_cast<size_t>(i)] == 2.0f * in[static_cast<size_t>(i)]);
}

TEST_CASE("emulator: EMU_ORDER exposes a missing barrier", "[emu]") {
  std::vector<int> fwd(64), rev(64), seeded(64), fixed_f(64), fixed_r(64);
  emu::set_order(emu::Order::forward);
  launch(emu::racy_rotate, dim3(1), dim3(64), 0, nullptr, fwd.data());
  launch(emu::fixed_rotate, dim3(1), dim3(64), 0, nullptr, fixed_f.data());
  emu::set_order(emu::Order::reverse);
  launch(emu::racy_rotate, dim3(1), dim3(64), 0, nullptr, rev.data());
  launch(emu::fixed_rotate, dim3(1), dim3(64), 0, nullptr, fixed_r.data());
  emu::set_order(emu::Order::seeded, 42);
  launch(emu::racy_rotate, dim3(1), dim3(64), 0, nullptr, seeded.data());
  emu::reset_order_from_env();
  CHECK(fwd != rev);
  CHECK(fwd[63] == 0);   // thread 63 runs last in forward order and sees thread 0's write
  CHECK(fwd[0] == -1);   // thread 0 runs first: uninitialised (0xFF bytes)
  CHECK(rev[0] == 1);
  CHECK(rev[63] == -1);
  CHECK(seeded != fwd);
  for (int t = 0; t < 64; ++t) {
    CHECK(fixed_f[static_cast<size_t>(t)] == (t + 1) % 64);
    CHECK(fixed_r[static_cast<size_t>(t)] == (t + 1) % 64);
  }
}

// ============================================================ errors that must be reported
TEST_CASE("emulator: divergent barriers are reported with kernel, block and thread", "[emu][errors]") {
  std::vector<float> out(64, 0.0f);
  std::string e = error_of([&] { launch(emu::bad_divergent_barrier, dim3(2), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("divergent barrier") && Contains("emu::bad_divergent_barrier") && Contains("block (0,0,0)") &&
                    Contains("thread (") && Contains("test_emulator.cpp"));
  e = error_of([&] { launch(emu::bad_two_barriers, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("divergent barrier") && Contains("bad_two_barriers") && Contains("is not the one"));
  e = error_of([&] { launch(emu::bad_early_return, dim3(1), dim3(64), 0, nullptr, out.data(), 40); });
  CHECK_THAT(e, Contains("divergent barrier") && Contains("bad_early_return") && Contains("thread ("));
  // the same kernel is fine when no thread returns early
  CHECK(error_of([&] { launch(emu::bad_early_return, dim3(1), dim3(64), 0, nullptr, out.data(), 64); }).empty());
}

TEST_CASE("emulator: out-of-bounds shared memory is reported", "[emu][errors]") {
  std::vector<float> out(64, 0.0f);
  std::string e = error_of([&] { launch(emu::bad_shared_index, dim3(3), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("out-of-bounds shared memory") && Contains("index 32 of tile[32]") &&
                    Contains("bad_shared_index") && Contains("block (0,0,0)") && Contains("thread (31,0,0)"));
  e = error_of([&] { launch(emu::bad_shared_index_2d, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("index 8 of grid2[8]") && Contains("thread (9,0,0)"));
  e = error_of([&] { launch(emu::bad_dynamic_index, dim3(1), dim3(32), 32 * sizeof(float), nullptr, out.data()); });
  CHECK_THAT(e, Contains("out-of-bounds shared memory") && Contains("index 16 of s") && Contains("thread (20,0,0)"));
#if !defined(__SANITIZE_ADDRESS__)
  // Raw pointers are not index-checked; the guard bytes catch the write after
  // the block (under ASan the guard is poisoned and ASan itself reports it).
  e = error_of([&] { launch(emu::bad_dynamic_raw_write, dim3(2), dim3(32), 32 * sizeof(float), nullptr, out.data()); });
  CHECK_THAT(e, Contains("out-of-bounds write to dynamic shared memory") && Contains("block (0,0,0)") &&
                    Contains("bad_dynamic_raw_write"));
#endif
}

TEST_CASE("emulator: warp collectives with missing or mismatched lanes are reported", "[emu][errors]") {
  std::vector<float> out(64, 0.0f);
  std::string e = error_of([&] { launch(emu::bad_missing_lane, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("missing lane") && Contains("__shfl_xor_sync") && Contains("bad_missing_lane") &&
                    Contains("thread (") && Contains("test_emulator.cpp:"));
  e = error_of([&] { launch(emu::bad_nonexistent_lanes, dim3(1), dim3(48), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("missing lane") && Contains("do not exist") && Contains("block of 48 threads"));
  e = error_of([&] { launch(emu::bad_mismatched_collectives, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("disagree") && Contains("__ballot_sync") && Contains("__shfl_xor_sync"));
  e = error_of([&] { launch(emu::bad_deadlock, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("deadlock") && Contains("__syncthreads") && Contains("__shfl_sync") && Contains("block (0,0,0)"));
  e = error_of([&] { launch(emu::bad_width, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("width 12"));
  e = error_of([&] { launch_nobarrier(emu::barrier_kernel, dim3(1), dim3(32), 0, nullptr, out.data()); });
  CHECK_THAT(e, Contains("launch_nobarrier") && Contains("barrier_kernel") && Contains("thread ("));
  e = error_of([&] { launch(emu::throwing_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), 0); });
  CHECK_THAT(e, Contains("n must be positive, got 0") && Contains("throwing_kernel"));
  // the emulator is usable again after each failure
  CHECK(error_of([&] { launch(emu::plain_kernel, dim3(2), dim3(32), 0, nullptr, out.data()); }).empty());
  CHECK(out[63] == 2.0f);
}

TEST_CASE("emulator: launches over the sm_90 limits are reported", "[emu][errors]") {
  std::vector<float> out(2048, 0.0f);
  CHECK_THAT(error_of([&] { launch(emu::plain_kernel, dim3(1), dim3(1025), 0, nullptr, out.data()); }),
             Contains("plain_kernel") && Contains("1025 threads") && Contains("at most 1024"));
  CHECK_THAT(error_of([&] { launch(emu::plain_kernel, dim3(1), dim3(1, 1, 65), 0, nullptr, out.data()); }),
             Contains("block (1,1,65)"));
  CHECK_THAT(error_of([&] { launch(emu::plain_kernel, dim3(1, 65536), dim3(1), 0, nullptr, out.data()); }),
             Contains("grid (1,65536,1)"));
  CHECK_THAT(error_of([&] { launch(emu::plain_kernel, dim3(0), dim3(32), 0, nullptr, out.data()); }),
             Contains("at least 1"));
  // dynamic shared memory: 48 KiB without the opt-in attribute, up to 227 KiB with it
  CHECK_THAT(error_of([&] { launch(emu::dynamic_shared_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, out.data()); }),
             Contains("48 KiB") && Contains("dynamic_shared_kernel"));
  CHECK(emu::cudaFuncSetAttribute(emu::dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  100 * 1024) == cudaSuccess);
  CHECK(error_of([&] { launch(emu::dynamic_shared_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, out.data()); }).empty());
  CHECK_THAT(error_of([&] { launch(emu::dynamic_shared_kernel, dim3(1), dim3(32), 101 * 1024, nullptr, out.data()); }),
             Contains("allowed 102400"));
  CHECK(emu::cudaFuncSetAttribute(emu::dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  228 * 1024) == cudaErrorInvalidValue);
  CHECK(emu::cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(emu::cudaGetLastError() == cudaSuccess);
  int optin = 0;
  CHECK(emu::cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == cudaSuccess);
  CHECK(optin == 227 * 1024);
  // static (SIMCLR_SHARED, 40 KiB) + dynamic (10 KiB) > 48 KiB
  CHECK_THAT(error_of([&] { launch(emu::big_static_shared, dim3(1), dim3(32), 10 * 1024, nullptr, out.data()); }),
             Contains("40960 static") && Contains("big_static_shared"));
  CHECK(error_of([&] { launch(emu::big_static_shared, dim3(1), dim3(32), 0, nullptr, out.data()); }).empty());
}

TEST_CASE("emulator: runtime API on host memory", "[emu]") {
  float* p = nullptr;
  REQUIRE(emu::cudaMalloc(&p, 10 * sizeof(float)) == cudaSuccess);
  CHECK(std::isnan(p[3]));  // fresh device memory is garbage: NaN here
  REQUIRE(emu::cudaMemset(p, 0, 10 * sizeof(float)) == cudaSuccess);
  CHECK(p[9] == 0.0f);
  float h[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  REQUIRE(emu::cudaMemcpy(p, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(p[4] == 5.0f);
  CHECK(emu::cudaFree(p) == cudaSuccess);
  CHECK(emu::cudaFree(p) == cudaErrorInvalidDevicePointer);  // double free is caught
  CHECK(emu::cudaGetLastError() == cudaErrorInvalidDevicePointer);
  CHECK_THAT(error_of([&] { CUDA_CHECK(emu::cudaFree(h)); }),
             Contains("invalid device pointer") && Contains("cudaFree(h)") && Contains("test_emulator.cpp"));
  emu::cudaGetLastError();

  cudaStream_t s;
  cudaEvent_t a, b;
  REQUIRE(emu::cudaStreamCreate(&s) == cudaSuccess);
  REQUIRE(emu::cudaEventCreate(&a) == cudaSuccess);
  REQUIRE(emu::cudaEventCreate(&b) == cudaSuccess);
  CHECK(emu::cudaEventRecord(a, s) == cudaSuccess);
  CHECK(emu::cudaEventRecord(b, s) == cudaSuccess);
  float ms = -1.0f;
  CHECK(emu::cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
  CHECK(ms >= 0.0f);
  CHECK(emu::cudaEventDestroy(a) == cudaSuccess);
  CHECK(emu::cudaEventDestroy(b) == cudaSuccess);
  CHECK(emu::cudaStreamDestroy(s) == cudaSuccess);
  CHECK(emu::cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle);
  emu::cudaGetLastError();
}

TEST_CASE("emulator: cost of a 64-block x 256-thread kernel with 4 barriers", "[emu]") {
  // Not a timed assertion: prints the cost so regressions are visible in the log.
  const int blocks = 64;
  auto in = ref::random_floats(static_cast<size_t>(blocks * 256), 9);
  std::vector<float> out(blocks, 0.0f);
  const emu::Stats before = emu::stats();
  const auto t0 = std::chrono::steady_clock::now();
  launch(emu::timing_kernel, dim3(blocks), dim3(256), 0, nullptr, out.data(), in.data());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const emu::Stats after = emu::stats();
  for (int b = 0; b < blocks; ++b) {
    double ref = 0.0;
    for (int i = 0; i < 256; ++i) ref += in[static_cast<size_t>(b * 256 + i)];
    CHECK(std::fabs(out[static_cast<size_t>(b)] - ref) < 1e-4);
  }
  CHECK(after.blocks - before.blocks == 64);
  CHECK(after.barriers - before.barriers == 64 * 256 * 4);
  std::printf("emulator: 64 blocks x 256 threads, 4 barriers + 5 shuffles: %.1f ms (%llu fiber switches, order %s)\n",
              ms, static_cast<unsigned long long>(after.switches - before.switches),
              emu::order_name(emu::current_order()));
}
