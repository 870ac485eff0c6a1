// data/preview.cpp - the augmentation preview grid (see preview.h).
#include "data/preview.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "data/loader.h"
#include "engine/fileio.h"

namespace simclr {

namespace {

constexpr int kGap = 4;          // pixels between cells
constexpr int kMinCell = 96;     // magnify small images up to at least this
constexpr uint8_t kBackground = 255;
constexpr uint8_t kLetterbox = 128;

uint8_t to_u8(float x) {
  x = std::clamp(x, 0.f, 1.f);
  return static_cast<uint8_t>(std::lround(x * 255.f));
}

// Pastes a float image [h, w, C] in [0, 1], magnified `mag` times, at (x0, y0).
void paste(std::vector<uint8_t>& grid, int grid_w, int C, const float* img, int h, int w, int mag, int x0, int y0) {
  for (int y = 0; y < h * mag; y++)
    for (int x = 0; x < w * mag; x++)
      for (int c = 0; c < C; c++)
        grid[(static_cast<size_t>(y0 + y) * grid_w + x0 + x) * C + c] = to_u8(img[((y / mag) * w + x / mag) * C + c]);
}

void append_png(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

std::string write_preview(const std::string& out_png, const DataConfig& cfg, const PreviewOptions& opt) {
  SIMCLR_CHECK(opt.n >= 1 && opt.n <= 256, "preview: --n must be in [1, 256], got ", opt.n);
  std::string split = opt.split.empty() ? cfg.split : opt.split;
  std::shared_ptr<Dataset> ds = open_dataset(cfg, split);
  int n = static_cast<int>(std::min<int64_t>(opt.n, ds->size()));
  LoaderOptions lo = train_loader_options(cfg, n, opt.seed);
  lo.workers = 0;
  lo.drop_last = false;
  Loader loader(ds, cfg, lo);
  Batch batch = loader.build(0, 0);  // exactly the first training batch of this seed

  const int S = cfg.image_size, C = cfg.channels;
  const int mag = std::max(1, (kMinCell + S - 1) / S);
  const int cell = S * mag;
  const int grid_w = 3 * cell + 4 * kGap, grid_h = n * cell + (n + 1) * kGap;
  std::vector<uint8_t> grid(static_cast<size_t>(grid_w) * grid_h * C, kBackground);
  std::vector<float> buf(static_cast<size_t>(S) * S * C), tmp(buf.size());
  const size_t view_floats = buf.size();
  const float* views = batch.views.data<float>();  // [2n, S, S, C]

  std::string legend = ds->describe() + "\n";
  for (int p = 0; p < n; p++) {
    int64_t idx = batch.indices[p];
    Sample s = ds->get(idx);
    const Image& im = s.image;
    int y0 = kGap + p * (cell + kGap);
    // original: whole image, aspect kept, letterboxed in the S x S cell
    int oh = S, ow = S;
    if (im.width > im.height) oh = std::max(1, static_cast<int>(std::lround(static_cast<double>(S) * im.height / im.width)));
    if (im.height > im.width) ow = std::max(1, static_cast<int>(std::lround(static_cast<double>(S) * im.width / im.height)));
    std::fill(buf.begin(), buf.end(), kLetterbox / 255.f);
    std::vector<float> orig(static_cast<size_t>(oh) * ow * C);
    crop_resize_flip(orig.data(), im.pixels.data(), im.height, im.width, C, oh, ow, identity_view(im.height, im.width));
    for (int y = 0; y < oh; y++)
      std::memcpy(&buf[(static_cast<size_t>(y + (S - oh) / 2) * S + (S - ow) / 2) * C], &orig[static_cast<size_t>(y) * ow * C],
                  sizeof(float) * ow * C);
    paste(grid, grid_w, C, buf.data(), S, S, mag, kGap, y0);
    // the two views, un-normalised
    for (int v = 0; v < 2; v++) {
      const float* src = views + static_cast<size_t>(v * n + p) * view_floats;
      for (size_t i = 0; i < view_floats; i++) buf[i] = src[i] * cfg.std[i % C] + cfg.mean[i % C];
      paste(grid, grid_w, C, buf.data(), S, S, mag, kGap + (v + 1) * (cell + kGap), y0);
    }
    std::string label = s.label < 0 ? "-" : std::to_string(s.label);
    if (s.label >= 0 && s.label < static_cast<int64_t>(ds->class_names().size()))
      label += " (" + ds->class_names()[s.label] + ")";
    legend += "row " + std::to_string(p) + ": image " + std::to_string(idx) + ", label " + label + "\n";
    for (int v = 0; v < 2; v++) {
      ViewParams vp = sample_view(cfg.augment, opt.seed, 0, idx, v, im.height, im.width, S, S);
      legend += "  view " + std::to_string(v + 1) + ": " + describe(vp, C) + "\n";
    }
  }
  std::string png;
  int ok = stbi_write_png_to_func(append_png, &png, grid_w, grid_h, C, grid.data(), grid_w * C);
  SIMCLR_CHECK(ok && !png.empty(), "preview: PNG encoding failed");
  write_file_atomic(out_png, png);
  return legend;
}

}  // namespace simclr
