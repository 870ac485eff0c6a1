// tests/fuzz/fuzz_packed.cpp - the packed dataset reader (data/packed.h), as
// open_packed maps and validates a file, then get() of a few images and a
// full verify(). The header and tables CRCs are recomputed over the input
// first (packed_reseal) in 3 of 4 inputs, so mutated fields reach the bounds
// checks behind the checksums instead of stopping at "checksum mismatch";
// the 4th keeps the bytes as they are (the checksum paths). The first input
// byte selects that and the channels read (as stored, 1, 3).
#include <vector>

#include "data/packed.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  std::vector<uint8_t> file(data + 1, data + size);
  if ((sel & 3) != 3) simclr::packed_reseal(file);
  const std::string path = fuzz::put("data.simclr", file.data(), file.size());
  FUZZ_BODY({
    simclr::PackedOpenOptions o;
    o.channels = (sel >> 2) % 3 == 0 ? 0 : (sel >> 2) % 3 == 1 ? 1 : 3;
    auto ds = simclr::open_packed(path, o);
    for (int64_t i = 0; i < ds->size() && i < 4; i++) (void)ds->get(i);
    (void)ds->get(ds->size() - 1);
    (void)ds->verify();
    (void)ds->describe();
  });
}
