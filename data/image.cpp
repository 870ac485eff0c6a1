// data/image.cpp - channel conversions of decoded images (see image.h).
#include "data/image.h"

#include "engine/check.h"

namespace simclr {

Image convert_channels(const Image& src, int channels) {
  SIMCLR_CHECK(channels == 1 || channels == 3, "images must have 1 or 3 channels, asked for ", channels);
  SIMCLR_CHECK(src.channels == 1 || src.channels == 3, "image with ", src.channels, " channels (expected 1 or 3)");
  if (src.channels == channels) return src;
  Image out(src.height, src.width, channels);
  size_t npix = static_cast<size_t>(src.height) * src.width;
  const uint8_t* s = src.pixels.data();
  uint8_t* d = out.pixels.data();
  if (channels == 1) {
    for (size_t i = 0; i < npix; i++) d[i] = luma_u8(s[3 * i], s[3 * i + 1], s[3 * i + 2]);
  } else {
    for (size_t i = 0; i < npix; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
  }
  return out;
}

}  // namespace simclr
