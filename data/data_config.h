// data/data_config.h - the `data` section of a run config.
//
//   "data": {
//     "dataset": "fashion-mnist",   fashion-mnist | idx | image-folder | flat-folder | cifar10 | cifar100 | packed
//     "format": "packed",           optional, the same as "dataset": "packed"
//     "path": "...",                folder of the dataset (see below); packed: the file
//     "test_path": "",              image-folder: root of the test split; packed: the test file (optional)
//     "images": "", "labels": "",   idx: train files (raw or .gz)
//     "test_images": "", "test_labels": "",   idx: test files (optional)
//     "split": "train",             split used for pretraining: train | test
//     "subset": 0,                  use only the first n images (0 = all)
//     "channels": 1,                1 or 3 (default: 1 for fashion-mnist/idx, else 3)
//     "image_size": 28,             output side S (views are S x S)
//     "strict": false,              undecodable image: error (true) or skip + warn (false)
//     "workers": 2, "prefetch": 4, "drop_last": true,
//     "augment_on": "auto",         training views augmented on: gpu | cpu | auto (gpu when
//                                   training on a GPU; gpu on train.device emu runs the
//                                   emulated kernels); the same views either way
//     "mean": [...], "std": [...],  per channel (1 value is broadcast); defaults per dataset
//     "eval_crop_fraction": 1.0,    evaluation: centred crop fraction before the resize
//     "augment": { ... }            data/augment.h AugmentConfig, same key names
//   }
//
// `path` per dataset: fashion-mnist: the folder holding
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (default
// /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist);
// cifar10/cifar100: the folder of the *.bin batches; image-folder: the root of
// root/<class>/<image> (train split); flat-folder: the folder of images;
// packed: a file of `simclr pack` (data/packed.h), whose recorded source
// kind picks the per-dataset defaults.
// docs/data.md lists every key with its range.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/readers.h"
#include "engine/json_config.h"

namespace simclr {

struct DataConfig {
  std::string dataset = "fashion-mnist";
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::string test_path;
  std::string images, labels, test_images, test_labels;
  std::string split = "train";
  int64_t subset = 0;
  int channels = 1;
  int image_size = 28;
  bool strict = false;
  int workers = 2;
  int prefetch = 4;
  bool drop_last = true;
  std::string augment_on = "auto";  // gpu | cpu | auto (see augment_on_device)
  std::vector<float> mean = {0.2860f};
  std::vector<float> std = {0.3530f};
  double eval_crop_fraction = 1.0;
  AugmentConfig augment;
};

// Reads a `data` section (obj is its ConfigObject, e.g. root.child("data")),
// applies the per-dataset defaults, resolves the jitter ranges from the
// strength, and calls finish() on it and on its `augment` child: unknown keys,
// wrong types and out-of-range values throw naming the key path.
DataConfig parse_data_config(ConfigObject& obj);

// Whether training views are augmented on `device` (data.augment_on): "gpu"
// needs a device that runs CUDA code (cuda or emu), "cpu" never, "auto" on a
// GPU (cuda) only. Throws for "gpu" on the CPU device.
bool augment_on_device(const DataConfig& c, Device device);

// Back to JSON (every key, resolved values): for the run directory's resolved
// config and for checkpoints.
json data_config_to_json(const DataConfig& c);

// Checks that the files of `split` ("train" or "test") exist, before any work
// starts: throws simclr::Error naming the missing path (or the missing key).
void check_data_paths(const DataConfig& c, const std::string& split);

// True when the dataset has a test split configured (e.g. image-folder with a
// test_path, idx with test_images).
bool has_split(const DataConfig& c, const std::string& split);

// Opens the dataset of `split` (applies `subset` to the pretraining split
// only). Throws simclr::Error naming the file on bad input.
std::shared_ptr<Dataset> open_dataset(const DataConfig& c, const std::string& split);

// Opens a dataset from one path, guessing the format: a folder with class
// subfolders -> image-folder; a folder of images -> flat-folder; a folder of
// CIFAR batches -> cifar10/cifar100 (train split); a packed file (by its
// magic) -> packed; an IDX images file (raw or .gz) -> idx without labels. For `simclr embed --data`.
std::shared_ptr<Dataset> open_dataset_path(const std::string& path, int channels, bool strict);

}  // namespace simclr
