// train/npy.h - NumPy .npy files (format 1.0/2.0, C order, little endian) for
// f32, f64, i32, i64, u8 arrays: embeddings in and out of bench_ntxent,
// features out of `simclr embed`, fixtures in tests.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace simclr {

// Reads a .npy file into a CPU tensor. Clear errors for a missing file,
// a bad header, Fortran order, an unsupported dtype or a truncated payload.
Tensor read_npy(const std::string& path);

// Writes a CPU (or any device: copied) tensor atomically (temp file + rename).
void write_npy(const std::string& path, const Tensor& t);

}  // namespace simclr
