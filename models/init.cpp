// models/init.cpp - see init.h.
#include "models/init.h"

#include <cmath>

namespace simclr {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t h = mix64(mix64(mix64(seed) ^ stream) ^ index);
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

double normal01(uint64_t seed, uint64_t stream, uint64_t index) {
  double u1 = uniform01(seed, stream, 2 * index);
  double u2 = uniform01(seed, stream, 2 * index + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t hash_name(const char* s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

namespace {
template <class F>
void fill_with(Tensor& t, F&& f) {
  SIMCLR_CHECK(t.device().is_cpu(), "parameter initialisation runs on the CPU, got ", t.describe());
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); i++) p[i] = static_cast<float>(f(static_cast<uint64_t>(i)));
  } else {
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); i++) p[i] = f(static_cast<uint64_t>(i));
  }
}
}  // namespace

void init_normal(Tensor& t, double std, uint64_t seed, uint64_t stream) {
  fill_with(t, [&](uint64_t i) { return std * normal01(seed, stream, i); });
}

void init_uniform(Tensor& t, double lo, double hi, uint64_t seed, uint64_t stream) {
  fill_with(t, [&](uint64_t i) { return lo + (hi - lo) * uniform01(seed, stream, i); });
}

}  // namespace simclr
