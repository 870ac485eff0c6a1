// tests/fuzz/fuzz_image.cpp - image decoding (PNG, JPEG, BMP, ... through
// decode_image, data/readers.cpp); the first byte picks 1 or 3 channels.
#include "data/readers.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  simclr::Image img;
  std::string why;
  FUZZ_BODY({
    if (simclr::decode_image(data + 1, size - 1, (data[0] & 1) ? 3 : 1, &img, &why)) {
      // a decoded image must be as large as it says
      volatile uint8_t sum = 0;
      for (size_t i = 0; i < img.pixels.size(); i++) sum = static_cast<uint8_t>(sum + img.pixels[i]);
    }
  });
}
