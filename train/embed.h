// train/embed.h - encoder features h for a folder of images (`simclr embed`,
// whose flags tools/cli/embed_cli.h parses into EmbedOptions).
//
// The weights are a checkpoint or an export (train/export.h load_encoder);
// the preprocessing is the one the encoder was trained with (its manifest or
// checkpoint config): no augmentation, centred crop of eval_crop_fraction,
// bilinear resize to image_size, x / 255, per-channel (x - mean) / std, BN in
// eval mode (data/loader.h evaluation batches, train/eval.h encoder_features).
//
// --data PATH (open_embed_data):
//   a folder with class subfolders        image folder (labels = class indices)
//   a folder of images                    flat folder (labels -1)
//   a folder of CIFAR-10/100 .bin batches the train split
//   an IDX images file (raw or .gz)       labels from the matching
//                                         *labels-idx1-ubyte[.gz] beside it when
//                                         the name follows the MNIST convention, else -1
//   a packed .npy of uint8 images         [N, H, W] or [N, H, W, C] (C = 1 or 3), labels -1
// Images are converted to the encoder's channel count.
//
// Output: features f32 [N, F] .npy in dataset order (row i = image i), and
// optionally labels i64 [N] .npy; both written atomically. A progress bar on
// stderr when it is a terminal.
//
// Device: the CUDA backend does not cover the ResNet forward yet, so this runs
// on the CPU (a GPU, when present, is named in a note).
#pragma once
#include <memory>
#include <string>

#include "data/readers.h"
#include "train/eval.h"
#include "train/export.h"

namespace simclr {

// Opens --data PATH as described above. *labels_from (optional) receives the
// labels file used for an IDX images file ("" when none).
std::shared_ptr<Dataset> open_embed_data(const std::string& path, int channels, bool strict,
                                         std::string* labels_from = nullptr);

// Features h of every image of ds with the loaded encoder (dataset order).
FeatureSet embed_dataset(LoadedEncoder& enc, std::shared_ptr<const Dataset> ds, int64_t batch,
                         const ProgressFn& progress = {});

struct EmbedOptions {
  std::string weights;     // an export (.safetensors, raw .bin or its .json) or a checkpoint
  std::string data;        // see open_embed_data
  std::string out;         // features f32 [N, F] .npy
  std::string labels_out;  // labels i64 [N] .npy ("" = none)
  int64_t batch = 256;     // images per forward pass
  int threads = 0;         // CPU threads (0: all cores)
  bool strict = false;     // an undecodable image is an error (else skipped with a warning)
};

// Checks that the outputs overwrite no input and can be written, loads the
// encoder, embeds every image and writes both files atomically; prints a
// summary on stdout (and a progress bar on stderr when it is a terminal).
// Failures throw simclr::Error naming the problem.
void embed(const EmbedOptions& opt);

}  // namespace simclr
