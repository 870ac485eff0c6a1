// tests/fuzz/fuzz_idx.cpp - IDX images + labels (raw or gzip), as open_idx reads
// them. Input: u16 length L of the labels part, then L bytes of labels file,
// then the images file (either may be gzip-compressed: read_maybe_gzip).
#include <cstring>

#include "data/readers.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t l = static_cast<size_t>(data[0]) | static_cast<size_t>(data[1]) << 8;
  if (l > size - 2) l = size - 2;
  const std::string labels = l > 0 ? fuzz::put("labels-idx1-ubyte", data + 2, l) : "";
  const std::string images = fuzz::put("images-idx3-ubyte", data + 2 + l, size - 2 - l);
  FUZZ_BODY({
    auto ds = simclr::open_idx(images, labels, 1);
    for (int64_t i = 0; i < ds->size() && i < 4; i++) (void)ds->get(i);
    if (ds->size() > 0) (void)ds->get(ds->size() - 1);
  });
}
