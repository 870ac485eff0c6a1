// train/safetensors.h - a small reader and writer of the safetensors format
// (https://github.com/huggingface/safetensors), our own code over nlohmann/json.
//
// File layout:
//   [0, 8)        u64 little endian: N = length of the JSON header in bytes
//   [8, 8+N)      UTF-8 JSON object:
//                   { "<tensor name>": { "dtype": "F32" | "BF16" | "F16" | "I64",
//                                         "shape": [d0, d1, ...],          ([] = scalar)
//                                         "data_offsets": [begin, end] },  (bytes, into the data buffer)
//                     ...,
//                     "__metadata__": { "<key>": "<string value>", ... } }  (optional, strings only)
//                 padded with spaces to a multiple of 8 bytes (as the reference writer does)
//   [8+N, end)    the data buffer: every tensor's raw little-endian row-major bytes
//
// The writer lays tensors out back to back, in the order given, with no gaps
// (what the reference reader insists on). The reader checks everything before
// using it: header length within the file, a JSON object, a known dtype, a
// shape whose byte size equals end - begin, offsets inside the buffer, tensors
// covering the buffer without overlaps or holes, string-only metadata.
// Any failure throws simclr::Error "safetensors '<path>': <what is wrong>".
//
// DType mapping: F32 <-> DType::f32, BF16 <-> bf16, F16 <-> f16, I64 <-> i64.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace simclr {

struct SafetensorsEntry {
  std::string name;
  Tensor tensor;  // CPU, contiguous; dtype f32, bf16, f16 or i64
};

struct Safetensors {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<SafetensorsEntry> tensors;        // file order (ascending data offset)
  const SafetensorsEntry* find(const std::string& name) const;
};

// "F32", "BF16", "F16", "I64"; throws for any other dtype.
const char* safetensors_dtype_name(DType t);

std::string safetensors_to_bytes(const Safetensors& st);
Safetensors safetensors_from_bytes(const std::string& bytes, const std::string& path_for_errors);

// Atomic write (temp file + rename; no partial file on failure).
void save_safetensors(const std::string& path, const Safetensors& st);
Safetensors load_safetensors(const std::string& path);

// True when the bytes start like a safetensors file (a plausible header
// length followed by '{'): used to tell exports from checkpoints.
bool looks_like_safetensors(const std::string& bytes);

}  // namespace simclr
