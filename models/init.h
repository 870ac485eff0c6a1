// models/init.h - deterministic parameter initialisation.
//
// Every draw comes from a counter-based generator (splitmix64 of seed, a
// per-tensor stream id and the element index), so a model initialised with
// the same seed is bit-identical on every machine and thread count, and does
// not depend on the C++ library's distributions (std::normal_distribution is
// implementation-defined).
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace simclr {

// 64-bit mix (splitmix64 finaliser).
uint64_t mix64(uint64_t x);
// Uniform in [0, 1) from (seed, stream, index).
double uniform01(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal (Box-Muller over two uniforms) from (seed, stream, index).
double normal01(uint64_t seed, uint64_t stream, uint64_t index);
// Hash of a string (FNV-1a), used to derive a stream id from a parameter name.
uint64_t hash_name(const char* s);

// Fill a CPU f32/f64 tensor: N(0, std^2) / U(lo, hi). stream picks an
// independent sequence (e.g. hash_name(param name)).
void init_normal(Tensor& t, double std, uint64_t seed, uint64_t stream);
void init_uniform(Tensor& t, double lo, double hi, uint64_t seed, uint64_t stream);

}  // namespace simclr
