// data/preview.h - the PNG grid behind `simclr preview` (flags: tools/cli/preview_cli.h) showing what the model trains on.
//
// One row per image: the original (whole image, aspect kept, on a grey
// letterbox), then its two augmented views exactly as the training loader
// builds them (batch 0 of epoch 0 for the given seed, un-normalised for
// display: x * std + mean, clamped to [0, 1], scaled to 8 bits). Small images
// are magnified with nearest-neighbour so each cell is at least 96 pixels.
#pragma once
#include <string>

#include "data/data_config.h"

namespace simclr {

struct PreviewOptions {
  int n = 8;           // rows (images)
  uint64_t seed = 0;   // the training seed whose batch is shown
  std::string split;   // "" = the config's split
};

// Writes the grid to out_png (atomically) and returns a text legend (one line
// per row: dataset index, label, both views' parameters).
std::string write_preview(const std::string& out_png, const DataConfig& cfg, const PreviewOptions& opt);

}  // namespace simclr
