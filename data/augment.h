// data/augment.h - SimCLR's augmentations: the CPU reference.
//
// One view = random resized crop -> horizontal flip -> colour jitter (random
// order, p) -> random grayscale (p) -> Gaussian blur (p) -> solarisation (p)
// -> per-channel normalisation, the torchvision pipeline of SimCLR:
//   RandomResizedCrop(S, scale, ratio), RandomHorizontalFlip(),
//   RandomApply([ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)], p=0.8),
//   RandomGrayscale(p=0.2), GaussianBlur(k ~ 0.1 S, sigma=(0.1, 2.0)) with p=0.5,
//   [RandomSolarize(0.5)], ToTensor(), Normalize(mean, std).
//
// Two halves, so that the GPU kernels of a later issue consume exactly the same
// numbers:
//   sample_view(): draws a ViewParams (a plain struct) from the counter-based
//     RNG of data/rng.h for (seed, epoch, sample index, view). Same inputs ->
//     same struct, whatever the thread or worker count.
//   apply_view(): pure function of (source pixels, ViewParams) -> float pixels.
//     Each step is a small function over float pixels in [0, 1] (the
//     per-pixel maths below is inline and host/device-callable); a GPU kernel
//     that runs the same steps in float matches it to rounding.
//
// Pixel domain: u8 source / 255 -> float in [0, 1]; every step stays in float
// (no rounding back to 8 bits between steps, unlike PIL). Ops that can leave
// [0, 1] clamp as torchvision's float tensor path does (_blend clamps).
//
// Layouts: source u8 [H, W, C]; output f32 [OH, OW, C] (NHWC row of a batch).
// C is 1 or 3. On 1-channel images saturation, hue and grayscale are the
// identity (torchvision: "match PIL behaviour"); brightness and contrast act on
// the grey values (contrast blends with the image mean).
#pragma once
#include <math.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "data/rng.h"

#if defined(__CUDACC__)
#define SIMCLR_DATA_HD __host__ __device__
#else
#define SIMCLR_DATA_HD
#endif

namespace simclr {

// ---------------------------------------------------------------- configuration
// Every probability and range of the family (defaults: the SimCLR paper).
// The `data.augment` config section (data/data_config.h) fills it.
struct AugmentConfig {
  // RandomResizedCrop: area fraction in [scale_min, scale_max], aspect ratio
  // w/h log-uniform in [ratio_min, ratio_max].
  double crop_scale_min = 0.08, crop_scale_max = 1.0;
  double crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;
  double flip_p = 0.5;
  // ColorJitter, applied as a whole with probability jitter_p. The factor
  // ranges are brightness/contrast/saturation in [max(0, 1 - x), 1 + x] and hue
  // in [-x, x], with x = 0.8 s, 0.8 s, 0.8 s, 0.2 s for strength s unless set
  // explicitly (data_config.cpp resolves them).
  double jitter_p = 0.8;
  double jitter_strength = 1.0;
  double brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2;
  double gray_p = 0.2;
  // GaussianBlur: sigma uniform in [blur_sigma_min, blur_sigma_max]; kernel
  // side k = 2 * floor(floor(blur_kernel_frac * S) / 2) + 1 with S = the output
  // side (min(OH, OW)): the official SimCLR rule (radius = int(0.1 S) // 2).
  double blur_p = 0.5, blur_sigma_min = 0.1, blur_sigma_max = 2.0, blur_kernel_frac = 0.1;
  // Solarisation (BYOL-style, off by default): x >= threshold -> 1 - x.
  double solarize_p = 0.0, solarize_threshold = 0.5;
};

// ---------------------------------------------------------------- parameters
// Indices into ViewParams::order (the ColorJitter steps).
enum JitterOp : uint8_t { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

// Everything one view needs. Plain data (trivially copyable, fixed layout) so a
// batch of them can be copied to the GPU as is.
struct ViewParams {
  // geometry: crop box in source pixels, then flip of the resized crop
  int32_t crop_x = 0, crop_y = 0, crop_w = 0, crop_h = 0;
  int32_t flip = 0;
  // colour jitter: applied only when jitter != 0, steps in `order`
  int32_t jitter = 0;
  float brightness = 1.f, contrast = 1.f, saturation = 1.f, hue = 0.f;
  uint8_t order[4] = {kBrightness, kContrast, kSaturation, kHue};
  int32_t grayscale = 0;
  // blur: kernel side blur_kernel (odd), sigma blur_sigma
  int32_t blur = 0;
  int32_t blur_kernel = 1;
  float blur_sigma = 1.f;
  int32_t solarize = 0;
  float solarize_threshold = 0.5f;
};
static_assert(std::is_trivially_copyable_v<ViewParams>, "ViewParams must stay plain data");

// The crop box: torchvision's RandomResizedCrop.get_params.
//   for 10 tries: s ~ U[scale_min, scale_max], log r ~ U[log ratio_min, log ratio_max],
//     w = round(sqrt(s * H * W * r)), h = round(sqrt(s * H * W / r)) (round half to
//     even, Python's round); if 0 < w <= W and 0 < h <= H: y ~ U{0..H-h},
//     x ~ U{0..W-w}, done.
//   fallback: centre crop; the whole image if W/H is within [ratio_min, ratio_max],
//     else the largest box with the nearest allowed ratio (w = W, h = round(W /
//     ratio_min) or h = H, w = round(H * ratio_max)), x = (W - w) / 2, y = (H - h) / 2.
// box = {x, y, w, h}.
void sample_crop(int32_t box[4], CounterRng& rng, int H, int W, const AugmentConfig& cfg);

// Kernel side for output side S (see AugmentConfig).
int blur_kernel_size(int S, double frac);

// Draws the parameters of one view of one image. Draw order (the RNG words are
// consumed in this order): crop (per try: scale, log-ratio, then y, x on
// acceptance), flip, jitter-applied, [jitter: permutation (Fisher-Yates, 3
// draws), brightness, contrast, saturation, hue], grayscale, blur-applied,
// [sigma], solarize-applied.
// view is 0 or 1 (stream kStreamView1 / kStreamView2).
ViewParams sample_view(const AugmentConfig& cfg, uint64_t seed, int64_t epoch, int64_t sample, int view, int H,
                       int W, int OH, int OW);

// The deterministic evaluation transform as ViewParams: the centred box with the
// output's aspect ratio, covering crop_fraction of the shorter matching side,
// resized to OH x OW; no flip, no colour ops. (crop_fraction 1 and a source the
// size of the output: the identity.) Resize(S/f) + CenterCrop(S) up to rounding.
ViewParams eval_view(int H, int W, int OH, int OW, double crop_fraction = 1.0);

// The identity on an H x W source (output the same size): full crop, nothing else.
ViewParams identity_view(int H, int W);

// One-line description for logs and the preview. With channels = 1 the steps
// that are the identity on grey images (saturation, hue, grayscale) are left out.
std::string describe(const ViewParams& p, int channels = 3);

// ---------------------------------------------------------------- per-pixel maths
// float pixels in [0, 1]; these are the shared definitions for the CUDA kernels.

SIMCLR_DATA_HD inline float clamp01(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
// ITU-R BT.601 luma.
SIMCLR_DATA_HD inline float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }
// torchvision _blend: clamp(f a + (1 - f) b, 0, 1).
SIMCLR_DATA_HD inline float blend(float a, float b, float f) { return clamp01(f * a + (1.f - f) * b); }

// Hue rotation of one RGB pixel by h (in turns, [-0.5, 0.5]): torchvision's
// _rgb2hsv / _hsv2rgb in float, same formulas and branch order.
SIMCLR_DATA_HD inline void hue_pixel(float* rgb, float h) {
  float r = rgb[0], g = rgb[1], b = rgb[2];
  float maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
  float minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
  bool eqc = maxc == minc;
  float cr = maxc - minc;
  float s = cr / (eqc ? 1.f : maxc);
  float div = eqc ? 1.f : cr;
  float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  float hh;
  if (maxc == r) hh = bc - gc;
  else if (maxc == g) hh = 2.f + rc - bc;
  else hh = 4.f + gc - rc;
  hh = hh / 6.f + 1.f;
  hh = hh - static_cast<float>(static_cast<int>(hh));  // fmod(hh, 1), hh >= 0
  // (h + hue) % 1.0, Python's modulo (result in [0, 1))
  float t = hh + h;
  t = t - floorf(t);
  float v = maxc;
  float i = floorf(t * 6.f);
  float f = t * 6.f - i;
  int ii = static_cast<int>(i) % 6;
  float p = clamp01(v * (1.f - s));
  float q = clamp01(v * (1.f - s * f));
  float tt = clamp01(v * (1.f - s * (1.f - f)));
  switch (ii) {
    case 0: rgb[0] = v; rgb[1] = tt; rgb[2] = p; break;
    case 1: rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
    case 2: rgb[0] = p; rgb[1] = v; rgb[2] = tt; break;
    case 3: rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
    case 4: rgb[0] = tt; rgb[1] = p; rgb[2] = v; break;
    default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
  }
}

// Mirror index for reflect padding (torch "reflect": the edge is not repeated):
// ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ... ; any i, n >= 1.
SIMCLR_DATA_HD inline int reflect_index(int i, int n) {
  if (n == 1) return 0;
  int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// ---------------------------------------------------------------- image ops
// Shape legend: H, W source size; OH, OW output size; C channels (1 or 3);
// npix = OH * OW. All float images are HWC.

// Crop box -> bilinear resize to OH x OW -> optional horizontal flip, from u8
// (divided by 255) to float. Bilinear sampling is PyTorch's
// interpolate(mode="bilinear", align_corners=False, antialias=False) on the
// cropped image, in float:
//   scale = crop_w / OW;  sx = max((ox + 0.5) * scale - 0.5, 0)
//   x0 = floor(sx), x1 = min(x0 + 1, crop_w - 1), wx = sx - x0  (same for y)
//   out = (1-wy) ((1-wx) p[y0][x0] + wx p[y0][x1]) + wy ((1-wx) p[y1][x0] + wx p[y1][x1])
// with p = source / 255.f (a float division, as ToTensor) at
// (crop_y + y, crop_x + x). Flip: output column ox takes the resized column
// OW - 1 - ox.
void crop_resize_flip(float* dst, const uint8_t* src, int H, int W, int C, int OH, int OW, const ViewParams& p);

void adjust_brightness(float* img, int npix, int C, float f);  // clamp(f x)
// clamp(f x + (1 - f) m), m = mean over the image of the luma (C = 3) or of
// the values (C = 1), accumulated in double.
void adjust_contrast(float* img, int npix, int C, float f);
void adjust_saturation(float* img, int npix, int C, float f);  // blend(x, luma, f); C = 1: identity
void adjust_hue(float* img, int npix, int C, float h);         // hue_pixel; C = 1: identity
void to_grayscale(float* img, int npix, int C);                // r = g = b = luma; C = 1: identity
void solarize(float* img, int npix, int C, float threshold);   // x >= t -> 1 - x
// Normalised 1-D Gaussian, k taps at x = -(k-1)/2 .. (k-1)/2 (torchvision's
// _get_gaussian_kernel1d in float).
void gaussian_kernel1d(float* w, int k, float sigma);
// Separable blur: horizontal pass into tmp, vertical pass back into img, both
// with reflect padding (k/2 each side), each output the sum over taps in
// order j = 0..k-1 of w[j] * input, accumulated in float from 0.
// tmp holds OH * OW * C floats.
void gaussian_blur(float* img, float* tmp, int OH, int OW, int C, int k, float sigma);
// (x - mean[c]) / std[c].
void normalize(float* img, int npix, int C, const float* mean, const float* std);

// The whole view: crop_resize_flip, then the jitter steps in p.order (if
// p.jitter), grayscale, blur, solarize; normalised when mean/std are given
// (both non-null). tmp: OH * OW * C floats of scratch. dst: [OH, OW, C].
void apply_view(float* dst, float* tmp, const uint8_t* src, int H, int W, int C, int OH, int OW,
                const ViewParams& p, const float* mean, const float* std);

}  // namespace simclr
