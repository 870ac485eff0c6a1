// engine/fileio.h - small file helpers: atomic writes (temp file in the same
// folder, fsync, rename: a reader sees the old file or the new one, never a
// partial one), whole-file reads, CRC-32 for checkpoint checksums.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace simclr {

// Writes `data` to `path` atomically. Throws simclr::Error naming the path on
// any failure and leaves no temporary file behind.
void write_file_atomic(const std::string& path, std::string_view data);

// Reads a whole file; throws simclr::Error naming the path if it cannot.
std::string read_file(const std::string& path);

uint32_t crc32(const void* data, size_t bytes, uint32_t crc = 0);

}  // namespace simclr
