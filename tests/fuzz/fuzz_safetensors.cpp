// tests/fuzz/fuzz_safetensors.cpp - .safetensors bytes as
// safetensors_from_bytes reads them (exported encoders, simclr embed --weights).
#include "fuzz_common.h"
#include "train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  FUZZ_BODY({ (void)simclr::safetensors_from_bytes(bytes, "fuzz.safetensors"); });
}
