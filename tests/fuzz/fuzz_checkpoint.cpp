// tests/fuzz/fuzz_checkpoint.cpp - the checkpoint reader. The input is the
// file without its last 4 bytes: the CRC-32 is appended here, so the fuzzer
// reaches the header and tensor-table checks instead of failing the CRC.
#include "engine/fileio.h"
#include "fuzz_common.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  const uint32_t c = simclr::crc32(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&c), 4);
  FUZZ_BODY({
    simclr::Checkpoint ck = simclr::checkpoint_from_bytes(bytes, "fuzz.ckpt");
    try {
      (void)simclr::checkpoint_run_state(ck, "fuzz.ckpt");
    } catch (const simclr::Error&) {
    }
  });
}
