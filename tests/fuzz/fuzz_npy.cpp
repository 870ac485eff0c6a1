// tests/fuzz/fuzz_npy.cpp - .npy files as read_npy reads them (embeddings,
// packed datasets).
#include "fuzz_common.h"
#include "train/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::put("x.npy", data, size);
  FUZZ_BODY({
    simclr::Tensor t = simclr::read_npy(path);
    (void)t.nbytes();
  });
}
