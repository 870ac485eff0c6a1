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
//     per-pixel maths of kernels/augment.h is inline and host/device-callable);
//     the GPU kernels (kernels/cuda/augment.cu) run the same steps in float and
//     match it to rounding.
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
#include "kernels/augment.h"

#define SIMCLR_DATA_HD SIMCLR_AUG_HD

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
// ViewParams (the plain struct of one view) and JitterOp live in
// kernels/augment.h, with the per-pixel maths and the image ops below.

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

// ---------------------------------------------------------------- per-pixel maths, image ops
// kernels/augment.h (included above) declares them for this header's users,
// unchanged: clamp01, luma, blend, hue_pixel, reflect_index,
// gaussian_kernel1d; crop_resize_flip, adjust_brightness / contrast /
// saturation / hue, to_grayscale, solarize, gaussian_blur, normalize and
// apply_view (their CPU reference: kernels/cpu/augment.cpp; the batched CUDA
// kernels: kernels/cuda/augment.cu).

}  // namespace simclr
