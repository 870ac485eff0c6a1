// data/image.h - the decoded image: 8-bit pixels, HWC (row-major, channels
// interleaved), 1 (grey) or 3 (RGB) channels, and the channel conversions the
// readers use.
//
//   pixels[(y * width + x) * channels + c],  y in [0, height), x in [0, width)
//
// Grey from RGB uses the ITU-R BT.601 luma weights (0.299, 0.587, 0.114),
// rounded to the nearest integer (PIL's convert("L") rule); grey to RGB
// replicates the value into the three channels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace simclr {

struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]

  Image() = default;
  Image(int h, int w, int c) : height(h), width(w), channels(c), pixels(static_cast<size_t>(h) * w * c) {}
  bool empty() const { return pixels.empty(); }
  uint8_t& at(int y, int x, int c) { return pixels[(static_cast<size_t>(y) * width + x) * channels + c]; }
  uint8_t at(int y, int x, int c) const { return pixels[(static_cast<size_t>(y) * width + x) * channels + c]; }
};

// ITU-R BT.601 luma of one RGB pixel in [0, 255], rounded to nearest.
inline uint8_t luma_u8(uint8_t r, uint8_t g, uint8_t b) {
  float y = 0.299f * r + 0.587f * g + 0.114f * b;
  int v = static_cast<int>(y + 0.5f);
  return static_cast<uint8_t>(v > 255 ? 255 : v);
}

// Converts src (1 or 3 channels) to `channels` (1 or 3). Returns a copy when
// the channel count already matches.
Image convert_channels(const Image& src, int channels);

}  // namespace simclr
