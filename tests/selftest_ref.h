// tests/selftest_ref.h - host references for the self-test kernels of
// kernels/cuda/selftest.cu, shared by the emulated (tests/emu) and the GPU
// (tests/gpu) tests: random data, bf16/tf32 rounding written from their
// definitions, and the shuffles as the CUDA Programming Guide describes them
// (independent of the PTX formula the emulator implements).
#pragma once
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace simclr::selftest_ref {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

inline uint16_t to_bf16_bits(float x) {  // round to nearest even (finite inputs)
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_bits_value(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float tf32_value(float x) {  // cvt.rna.tf32.f32: nearest, ties away from zero, 10 mantissa bits
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Lanes form segments of `width`; reading a later segment (or past the warp)
// returns the caller's own value; earlier segments may be read (xor).
inline float shfl(const float* v, int lane, int src, int width) { return v[(lane / width) * width + (src % width)]; }
inline float shfl_up(const float* v, int lane, int d, int width) { return lane % width >= d ? v[lane - d] : v[lane]; }
inline float shfl_down(const float* v, int lane, int d, int width) {
  return lane % width + d < width ? v[lane + d] : v[lane];
}
inline float shfl_xor(const float* v, int lane, int m, int width) {
  const int j = lane ^ m;
  return j < (lane / width + 1) * width ? v[j] : v[lane];
}

// d[16][8] = a[16][16] b[16][8] + c in double from the bf16 values; mag[] = Σ|terms|.
inline void mma_bf16_ref(double* d, double* mag, const uint16_t* a, const uint16_t* b, const float* c) {
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double s = c[r * 8 + n], m = s < 0 ? -s : s;
      for (int k = 0; k < 16; ++k) {
        const double p = double(bf16_bits_value(a[r * 16 + k])) * bf16_bits_value(b[k * 8 + n]);
        s += p;
        m += p < 0 ? -p : p;
      }
      d[r * 8 + n] = s;
      mag[r * 8 + n] = m;
    }
}

// d[16][8] = tf32(a[16][8]) tf32(b[8][8]) + c in double; mag[] = Σ|terms|.
inline void mma_tf32_ref(double* d, double* mag, const float* a, const float* b, const float* c) {
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double s = c[r * 8 + n], m = s < 0 ? -s : s;
      for (int k = 0; k < 8; ++k) {
        const double p = double(tf32_value(a[r * 8 + k])) * tf32_value(b[k * 8 + n]);
        s += p;
        m += p < 0 ? -p : p;
      }
      d[r * 8 + n] = s;
      mag[r * 8 + n] = m;
    }
}

}  // namespace simclr::selftest_ref
