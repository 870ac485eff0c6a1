// data/augment.cpp - parameter sampling and the CPU reference of each
// augmentation step (see augment.h for the contract).
#include "data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "engine/check.h"

namespace simclr {

// ---------------------------------------------------------------- sampling
namespace {
// Python's round() on a float: nearest integer, ties to even.
int64_t round_half_even(double x) {
  double f = std::floor(x);
  double d = x - f;
  int64_t r = static_cast<int64_t>(f);
  if (d > 0.5) return r + 1;
  if (d < 0.5) return r;
  return (r % 2 == 0) ? r : r + 1;
}
}  // namespace

void sample_crop(int32_t box[4], CounterRng& rng, int H, int W, const AugmentConfig& cfg) {
  SIMCLR_ASSERT(H > 0 && W > 0);
  double area = static_cast<double>(H) * W;
  double log_lo = std::log(cfg.crop_ratio_min), log_hi = std::log(cfg.crop_ratio_max);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target_area = area * rng.uniform(cfg.crop_scale_min, cfg.crop_scale_max);
    double ratio = std::exp(rng.uniform(log_lo, log_hi));
    int64_t w = round_half_even(std::sqrt(target_area * ratio));
    int64_t h = round_half_even(std::sqrt(target_area / ratio));
    if (0 < w && w <= W && 0 < h && h <= H) {
      int64_t y = static_cast<int64_t>(rng.below(static_cast<uint64_t>(H - h + 1)));
      int64_t x = static_cast<int64_t>(rng.below(static_cast<uint64_t>(W - w + 1)));
      box[0] = static_cast<int32_t>(x);
      box[1] = static_cast<int32_t>(y);
      box[2] = static_cast<int32_t>(w);
      box[3] = static_cast<int32_t>(h);
      return;
    }
  }
  // Fallback: centre crop.
  double in_ratio = static_cast<double>(W) / H;
  int64_t w, h;
  if (in_ratio < cfg.crop_ratio_min) {
    w = W;
    h = round_half_even(w / cfg.crop_ratio_min);
  } else if (in_ratio > cfg.crop_ratio_max) {
    h = H;
    w = round_half_even(h * cfg.crop_ratio_max);
  } else {
    w = W;
    h = H;
  }
  // Rounding can step one pixel past the image for extreme shapes: clamp.
  w = std::clamp<int64_t>(w, 1, W);
  h = std::clamp<int64_t>(h, 1, H);
  box[0] = static_cast<int32_t>((W - w) / 2);
  box[1] = static_cast<int32_t>((H - h) / 2);
  box[2] = static_cast<int32_t>(w);
  box[3] = static_cast<int32_t>(h);
}

int blur_kernel_size(int S, double frac) {
  int n = static_cast<int>(std::floor(frac * S));
  return (n / 2) * 2 + 1;
}

ViewParams sample_view(const AugmentConfig& cfg, uint64_t seed, int64_t epoch, int64_t sample, int view, int H,
                       int W, int OH, int OW) {
  SIMCLR_ASSERT(view == 0 || view == 1);
  SIMCLR_ASSERT(sample >= 0 && sample <= 0xffffffffLL && epoch >= 0 && epoch <= 0xffffffffLL);
  CounterRng rng(seed, view == 0 ? kStreamView1 : kStreamView2, static_cast<uint32_t>(sample),
                 static_cast<uint32_t>(epoch));
  ViewParams p;
  int32_t box[4];
  sample_crop(box, rng, H, W, cfg);
  p.crop_x = box[0], p.crop_y = box[1], p.crop_w = box[2], p.crop_h = box[3];
  p.flip = rng.bernoulli(cfg.flip_p);
  p.jitter = rng.bernoulli(cfg.jitter_p);
  if (p.jitter) {
    // torch.randperm(4) equivalent: Fisher-Yates from the back.
    uint8_t ord[4] = {kBrightness, kContrast, kSaturation, kHue};
    for (int i = 3; i > 0; i--) std::swap(ord[i], ord[rng.below(static_cast<uint64_t>(i + 1))]);
    for (int i = 0; i < 4; i++) p.order[i] = ord[i];
    p.brightness = static_cast<float>(rng.uniform(std::max(0.0, 1.0 - cfg.brightness), 1.0 + cfg.brightness));
    p.contrast = static_cast<float>(rng.uniform(std::max(0.0, 1.0 - cfg.contrast), 1.0 + cfg.contrast));
    p.saturation = static_cast<float>(rng.uniform(std::max(0.0, 1.0 - cfg.saturation), 1.0 + cfg.saturation));
    p.hue = static_cast<float>(rng.uniform(-cfg.hue, cfg.hue));
  }
  p.grayscale = rng.bernoulli(cfg.gray_p);
  p.blur = rng.bernoulli(cfg.blur_p);
  p.blur_kernel = blur_kernel_size(std::min(OH, OW), cfg.blur_kernel_frac);
  if (p.blur) p.blur_sigma = static_cast<float>(rng.uniform(cfg.blur_sigma_min, cfg.blur_sigma_max));
  p.solarize = rng.bernoulli(cfg.solarize_p);
  p.solarize_threshold = static_cast<float>(cfg.solarize_threshold);
  return p;
}

ViewParams eval_view(int H, int W, int OH, int OW, double crop_fraction) {
  SIMCLR_ASSERT(H > 0 && W > 0 && OH > 0 && OW > 0);
  // Largest box with the output's aspect ratio, scaled by crop_fraction.
  double target = static_cast<double>(OW) / OH;
  double bw = W, bh = H;
  if (bw / bh > target) bw = bh * target;
  else bh = bw / target;
  bw *= crop_fraction;
  bh *= crop_fraction;
  int w = std::clamp(static_cast<int>(round_half_even(bw)), 1, W);
  int h = std::clamp(static_cast<int>(round_half_even(bh)), 1, H);
  ViewParams p;
  p.crop_x = (W - w) / 2;
  p.crop_y = (H - h) / 2;
  p.crop_w = w;
  p.crop_h = h;
  return p;
}

ViewParams identity_view(int H, int W) {
  ViewParams p;
  p.crop_w = W;
  p.crop_h = H;
  return p;
}

std::string describe(const ViewParams& p, int channels) {
  char buf[256];
  int n = std::snprintf(buf, sizeof(buf), "crop(x=%d y=%d w=%d h=%d)%s", p.crop_x, p.crop_y, p.crop_w, p.crop_h,
                        p.flip ? " flip" : "");
  std::string s(buf, static_cast<size_t>(n));
  if (p.jitter) {
    static const char* names[4] = {"b", "c", "s", "h"};
    std::string order;
    for (int i = 0; i < 4; i++)
      if (channels == 3 || p.order[i] == kBrightness || p.order[i] == kContrast) order += names[p.order[i]];
    if (channels == 3)
      n = std::snprintf(buf, sizeof(buf), " jitter(order=%s b=%.3f c=%.3f s=%.3f h=%+.3f)", order.c_str(),
                        p.brightness, p.contrast, p.saturation, p.hue);
    else
      n = std::snprintf(buf, sizeof(buf), " jitter(order=%s b=%.3f c=%.3f)", order.c_str(), p.brightness, p.contrast);
    s.append(buf, static_cast<size_t>(n));
  }
  if (p.grayscale && channels == 3) s += " gray";
  if (p.blur) {
    n = std::snprintf(buf, sizeof(buf), " blur(k=%d sigma=%.3f)", p.blur_kernel, p.blur_sigma);
    s.append(buf, static_cast<size_t>(n));
  }
  if (p.solarize) {
    n = std::snprintf(buf, sizeof(buf), " solarize(%.3f)", p.solarize_threshold);
    s.append(buf, static_cast<size_t>(n));
  }
  return s;
}

// ---------------------------------------------------------------- image ops
void crop_resize_flip(float* dst, const uint8_t* src, int H, int W, int C, int OH, int OW, const ViewParams& p) {
  // dst: [OH, OW, C]; src: [H, W, C]
  SIMCLR_ASSERT(p.crop_x >= 0 && p.crop_y >= 0 && p.crop_w > 0 && p.crop_h > 0 && p.crop_x + p.crop_w <= W &&
                p.crop_y + p.crop_h <= H);
  // u8 -> [0, 1] by division, as torchvision's ToTensor (x.float() / 255)
  static const std::array<float, 256> to01 = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; i++) t[i] = static_cast<float>(i) / 255.f;
    return t;
  }();
  const float scale_x = static_cast<float>(p.crop_w) / static_cast<float>(OW);
  const float scale_y = static_cast<float>(p.crop_h) / static_cast<float>(OH);
  // Column taps are the same for every row: compute once.
  std::vector<int> xs0(OW), xs1(OW);
  std::vector<float> wxs(OW);
  for (int ox = 0; ox < OW; ox++) {
    float sx = (static_cast<float>(ox) + 0.5f) * scale_x - 0.5f;
    if (sx < 0.f) sx = 0.f;
    int x0 = static_cast<int>(sx);
    int x1 = x0 + (x0 < p.crop_w - 1 ? 1 : 0);
    xs0[ox] = p.crop_x + x0;
    xs1[ox] = p.crop_x + x1;
    wxs[ox] = sx - static_cast<float>(x0);
  }
  for (int oy = 0; oy < OH; oy++) {
    float sy = (static_cast<float>(oy) + 0.5f) * scale_y - 0.5f;
    if (sy < 0.f) sy = 0.f;
    int y0 = static_cast<int>(sy);
    int y1 = y0 + (y0 < p.crop_h - 1 ? 1 : 0);
    float wy = sy - static_cast<float>(y0);
    const uint8_t* row0 = src + static_cast<size_t>(p.crop_y + y0) * W * C;
    const uint8_t* row1 = src + static_cast<size_t>(p.crop_y + y1) * W * C;
    float* out = dst + static_cast<size_t>(oy) * OW * C;
    for (int ox = 0; ox < OW; ox++) {
      int sxo = p.flip ? OW - 1 - ox : ox;
      int a = xs0[sxo] * C, b = xs1[sxo] * C;
      float wx = wxs[sxo];
      for (int c = 0; c < C; c++) {
        float p00 = to01[row0[a + c]], p01 = to01[row0[b + c]];
        float p10 = to01[row1[a + c]], p11 = to01[row1[b + c]];
        out[ox * C + c] = (1.f - wy) * ((1.f - wx) * p00 + wx * p01) + wy * ((1.f - wx) * p10 + wx * p11);
      }
    }
  }
}

void adjust_brightness(float* img, int npix, int C, float f) {
  for (int64_t i = 0; i < static_cast<int64_t>(npix) * C; i++) img[i] = clamp01(f * img[i]);
}

void adjust_contrast(float* img, int npix, int C, float f) {
  double sum = 0;
  if (C == 3) {
    for (int i = 0; i < npix; i++) sum += luma(img[3 * i], img[3 * i + 1], img[3 * i + 2]);
  } else {
    for (int i = 0; i < npix; i++) sum += img[i];
  }
  float m = static_cast<float>(sum / npix);  // C is 1 or 3: one value per pixel
  for (int64_t i = 0; i < static_cast<int64_t>(npix) * C; i++) img[i] = blend(img[i], m, f);
}

void adjust_saturation(float* img, int npix, int C, float f) {
  if (C != 3) return;
  for (int i = 0; i < npix; i++) {
    float* px = img + 3 * i;
    float l = luma(px[0], px[1], px[2]);
    px[0] = blend(px[0], l, f);
    px[1] = blend(px[1], l, f);
    px[2] = blend(px[2], l, f);
  }
}

void adjust_hue(float* img, int npix, int C, float h) {
  if (C != 3) return;
  for (int i = 0; i < npix; i++) hue_pixel(img + 3 * i, h);
}

void to_grayscale(float* img, int npix, int C) {
  if (C != 3) return;
  for (int i = 0; i < npix; i++) {
    float* px = img + 3 * i;
    float l = luma(px[0], px[1], px[2]);
    px[0] = px[1] = px[2] = l;
  }
}

void solarize(float* img, int npix, int C, float threshold) {
  for (int64_t i = 0; i < static_cast<int64_t>(npix) * C; i++)
    if (img[i] >= threshold) img[i] = 1.f - img[i];
}

void gaussian_kernel1d(float* w, int k, float sigma) {
  float half = static_cast<float>(k - 1) * 0.5f;
  float sum = 0.f;
  for (int i = 0; i < k; i++) {
    float x = -half + static_cast<float>(i);
    float t = x / sigma;
    w[i] = std::exp(-0.5f * t * t);
    sum += w[i];
  }
  for (int i = 0; i < k; i++) w[i] /= sum;
}

void gaussian_blur(float* img, float* tmp, int OH, int OW, int C, int k, float sigma) {
  // img, tmp: [OH, OW, C]
  SIMCLR_ASSERT(k >= 1 && k % 2 == 1);
  if (k == 1) return;  // a 1-tap normalised kernel is the identity
  std::vector<float> w(static_cast<size_t>(k));
  gaussian_kernel1d(w.data(), k, sigma);
  const int r = k / 2, row = OW * C;
  // horizontal: tmp[y][x] = sum_j w[j] img[y][reflect(x + j - r)], through a
  // reflect-padded copy of the row
  std::vector<float> pad(static_cast<size_t>(OW + 2 * r) * C);
  std::vector<int> src_col(OW + 2 * r);
  for (int i = 0; i < OW + 2 * r; i++) src_col[i] = reflect_index(i - r, OW);
  for (int y = 0; y < OH; y++) {
    const float* in = img + static_cast<size_t>(y) * row;
    float* out = tmp + static_cast<size_t>(y) * row;
    for (int i = 0; i < OW + 2 * r; i++)
      for (int c = 0; c < C; c++) pad[i * C + c] = in[src_col[i] * C + c];
    for (int x = 0; x < row; x++) out[x] = 0.f;
    for (int j = 0; j < k; j++) {
      const float* src = pad.data() + j * C;
      for (int x = 0; x < row; x++) out[x] += w[j] * src[x];
    }
  }
  // vertical: img[y][x] = sum_i w[i] tmp[reflect(y + i - r)][x]
  for (int y = 0; y < OH; y++) {
    float* out = img + static_cast<size_t>(y) * row;
    for (int x = 0; x < row; x++) out[x] = 0.f;
    for (int i = 0; i < k; i++) {
      const float* src = tmp + static_cast<size_t>(reflect_index(y + i - r, OH)) * row;
      for (int x = 0; x < row; x++) out[x] += w[i] * src[x];
    }
  }
}

void normalize(float* img, int npix, int C, const float* mean, const float* std) {
  float inv[3];
  for (int c = 0; c < C; c++) inv[c] = 1.f / std[c];
  for (int i = 0; i < npix; i++)
    for (int c = 0; c < C; c++) img[i * C + c] = (img[i * C + c] - mean[c]) * inv[c];
}

void apply_view(float* dst, float* tmp, const uint8_t* src, int H, int W, int C, int OH, int OW,
                const ViewParams& p, const float* mean, const float* std) {
  SIMCLR_ASSERT(C == 1 || C == 3);
  int npix = OH * OW;
  crop_resize_flip(dst, src, H, W, C, OH, OW, p);
  if (p.jitter) {
    for (int i = 0; i < 4; i++) {
      switch (p.order[i]) {
        case kBrightness: adjust_brightness(dst, npix, C, p.brightness); break;
        case kContrast: adjust_contrast(dst, npix, C, p.contrast); break;
        case kSaturation: adjust_saturation(dst, npix, C, p.saturation); break;
        case kHue: adjust_hue(dst, npix, C, p.hue); break;
        default: SIMCLR_ASSERT(false);
      }
    }
  }
  if (p.grayscale) to_grayscale(dst, npix, C);
  if (p.blur) gaussian_blur(dst, tmp, OH, OW, C, p.blur_kernel, p.blur_sigma);
  if (p.solarize) solarize(dst, npix, C, p.solarize_threshold);
  if (mean && std) normalize(dst, npix, C, mean, std);
}

}  // namespace simclr
