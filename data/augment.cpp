// data/augment.cpp - parameter sampling (the CPU reference of each
// augmentation step lives in kernels/cpu/augment.cpp; see augment.h).
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

// The image ops and apply_view: kernels/cpu/augment.cpp.

}  // namespace simclr
