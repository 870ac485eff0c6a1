// tests/fuzz/fuzz_cifar.cpp - a CIFAR-10 binary batch (test_batch.bin) as
// open_cifar10 reads it; the first input byte picks CIFAR-100 (train.bin/test.bin).
#include "data/readers.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool hundred = data[0] & 1;
  std::filesystem::remove(fuzz::scratch() + "/test_batch.bin");
  std::filesystem::remove(fuzz::scratch() + "/test.bin");
  fuzz::put(hundred ? "test.bin" : "test_batch.bin", data + 1, size - 1);
  FUZZ_BODY({
    auto ds = hundred ? simclr::open_cifar100(fuzz::scratch(), "test", 3) : simclr::open_cifar10(fuzz::scratch(), "test", 3);
    for (int64_t i = 0; i < ds->size() && i < 4; i++) (void)ds->get(i);
    if (ds->size() > 0) (void)ds->get(ds->size() - 1);
  });
}
