// train/export.h - the trained encoder out of a checkpoint, in torchvision's
// names and layouts, and back into the engine (docs/export.md).
//
// Export (`export_encoder <checkpoint> --out encoder.safetensors`; its flags
// are parsed in tools/cli/export_cli.h):
//   - the encoder's tensors under torchvision's ResNet state_dict names
//     (conv1.weight, bn1.running_mean, layer1.0.conv1.weight, ...,
//     layer2.0.downsample.0.weight; no fc.*), so that
//     torchvision.models.resnet50().load_state_dict(sd, strict=False) reports
//     only fc.weight and fc.bias missing;
//   - layouts: conv weights OHWI (ours) -> OIHW (PyTorch); BN weight, bias,
//     running_mean, running_var [C] unchanged; num_batches_tracked (our f32
//     [1]) -> I64 scalar [] as PyTorch keeps it; projection-head linear weights
//     [out, in] unchanged;
//   - dtype fp32 (default), bf16 or fp16 for every floating tensor
//     (round to nearest even); num_batches_tracked stays int64;
//   - with_head: the projection head too, its checkpoint names "head.K.*"
//     renamed "projection_head.K.*" (kExportHeadPrefix), which torchvision
//     reports as unexpected keys (strict=False ignores them);
//   - format "safetensors": one .safetensors file (train/safetensors.h) whose
//     __metadata__ holds {"format": "pt", "simclr_manifest": <manifest JSON>};
//     format "raw": one flat binary, every tensor at a 64-byte aligned offset
//     from the start of the file, little endian, row-major in the layouts above;
//   - a manifest beside the output, <output minus extension>.json (see
//     export_manifest), listing every tensor with name, dtype, shape and, for
//     raw, offset and bytes.
// Both files are written atomically (temp file + rename); if the manifest
// cannot be written the weights file is removed again, so a failed export
// leaves no partial file.
//
// Import: load_checkpoint_or_export() reads a checkpoint, a .safetensors
// export or a raw export (its .bin or its manifest .json) and returns a
// Checkpoint in the engine's layouts (OHWI, f32, counters f32 [1], head
// tensors back under "head." with the head flag), whose meta holds the
// training config, the architecture and the step; load_encoder() builds the
// ResNet from it, ready for inference.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "models/resnet.h"

namespace simclr {

constexpr const char* kExportHeadPrefix = "projection_head.";
constexpr int kExportManifestVersion = 1;

struct ExportOptions {
  std::string format = "safetensors";  // safetensors | raw
  DType dtype = DType::f32;            // f32 | bf16 | f16
  bool with_head = false;
  // The manifest's path is derived from the output's (X.json beside X.safetensors):
  // an existing file there that is not an export manifest is replaced only with force.
  bool force = false;
};

// "fp32" | "bf16" | "fp16" (also f32/float32, f16/float16/half) -> DType;
// anything else throws naming the value.
DType export_dtype_from_name(const std::string& s);
// "fp32", "bf16", "fp16".
const char* export_dtype_name(DType t);

// The checkpoint's model tensors in export names, layouts and dtype, in the
// checkpoint's order (torchvision's registration order).
std::vector<SafetensorsEntry> export_tensors(const Checkpoint& ck, const ExportOptions& opt);

// The manifest (without the "file" and "tensors" entries export_checkpoint
// adds):
//   format "simclr-encoder", manifest_version, architecture ("resnet50"),
//   model {depth, width, stem, in_channels, bn_eps, bn_momentum},
//   feature_dim, input {image_size, channels, mean, std, eval_crop_fraction,
//   pixel_scale, layout}, dtype, with_head, head {...} (with_head only),
//   naming, training {config, config_hash, step, epoch, final_loss, metrics},
//   evaluation [the metrics.jsonl "eval" lines of the checkpoint's step],
//   trained_with {version, commit}, engine {version, commit},
//   source_checkpoint.
// config_hash = "fnv1a64:" + 16 hex digits of FNV-1a 64 over the compact,
// key-sorted JSON of the resolved training config.
json export_manifest(const Checkpoint& ck, const std::string& checkpoint_path, const ExportOptions& opt);
std::string config_hash(const json& config);

// <out minus extension>.json; throws when out itself ends in ".json".
std::string manifest_path_for(const std::string& out);

struct ExportResult {
  std::string weights_path, manifest_path;
  size_t tensors = 0;
  uint64_t bytes = 0;  // size of the weights file
  json manifest;
};

// Loads and verifies the checkpoint, converts, writes both files.
ExportResult export_checkpoint(const std::string& checkpoint_path, const std::string& out, const ExportOptions& opt);

// ---- import
// kind: "checkpoint", "safetensors" or "raw" (set when non-null).
Checkpoint load_checkpoint_or_export(const std::string& path, std::string* kind = nullptr);

struct LoadedEncoder {
  std::string path, kind;
  json meta;              // the (possibly reconstructed) checkpoint meta
  ResNetConfig model;
  DataConfig data;        // image_size, channels, mean, std, eval_crop_fraction as trained
  ParamStore store;
  std::unique_ptr<ResNet> encoder;
};

// A checkpoint or an export -> the encoder (CPU, eval-ready) and its input
// preprocessing. Errors name the file.
std::unique_ptr<LoadedEncoder> load_encoder(const std::string& path);

}  // namespace simclr
