// data/readers.h - datasets: the Dataset interface and its readers.
//
// Formats (docs/data.md has the details):
//   image folder   root/<class>/<file>: classes = sorted subfolder names ->
//                  indices 0..K-1; files sorted by name within each class;
//                  JPEG / PNG / BMP / TGA (by extension, case-insensitive)
//                  decoded with stb_image.
//   flat folder    root/<file>, sorted, no labels (label -1).
//   IDX            MNIST / Fashion-MNIST: an images file (magic 0x00000803,
//                  u8, N x H x W; or 0x00000804, N x H x W x C) and a labels
//                  file (0x00000801, u8, N), raw or gzip-compressed (zlib
//                  reads both).
//   CIFAR-10       <dir>/data_batch_1..5.bin (train), test_batch.bin (test);
//                  records of 1 label byte + 3072 bytes (R, G, B planes of
//                  32 x 32). Class names from batches.meta.txt when present.
//   CIFAR-100      <dir>/train.bin, test.bin; records of coarse label, fine
//                  label, 3072 bytes; the fine label (100 classes) is used.
//                  Class names from fine_label_names.txt when present.
//
// Every reader converts images to the requested channel count (1 or 3; grey
// from RGB by ITU-R BT.601 luma, rounded; alpha dropped).
//
// Bad input never crashes:
//   - a missing path, an empty folder, an IDX/CIFAR file with a bad magic, a
//     wrong size or an image/label count mismatch: simclr::Error naming the file;
//   - an image that does not decode (corrupt, truncated): in strict mode a
//     simclr::Error naming the file; otherwise a warning on stderr (the first
//     10 files, then a count), the file is counted in skipped(), and get()
//     returns the next image in dataset order that decodes (so batch shapes and
//     determinism are kept; all images failing is an error).
//
// get() is safe to call from several threads at once.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"

namespace simclr {

struct Sample {
  Image image;        // u8 [H, W, C]
  int64_t label = -1;  // -1 when unlabelled
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int channels() const = 0;
  // Fixed image size, or 0 when images vary (folders).
  virtual int height() const = 0;
  virtual int width() const = 0;
  // Number of classes; 0 when unlabelled.
  virtual int num_classes() const { return static_cast<int>(class_names().size()); }
  virtual const std::vector<std::string>& class_names() const = 0;
  // Image i (0 <= i < size()) and its label. Thread-safe.
  virtual Sample get(int64_t i) const = 0;
  // Images that failed to decode and were replaced (non-strict mode).
  virtual int64_t skipped() const { return 0; }
  // "fashion-mnist train: 60000 images 28x28x1, 10 classes"
  virtual std::string describe() const = 0;
};

// ---- readers (each throws simclr::Error naming the path on bad input)
std::unique_ptr<Dataset> open_image_folder(const std::string& root, int channels, bool strict);
std::unique_ptr<Dataset> open_flat_folder(const std::string& root, int channels, bool strict);
// class_names: optional (empty: "0", "1", ... up to the largest label).
std::unique_ptr<Dataset> open_idx(const std::string& images_path, const std::string& labels_path, int channels,
                                  std::vector<std::string> class_names = {}, std::string name = "idx");
// dir holds the *.bin batches (or a cifar-10-batches-bin / cifar-100-binary
// subfolder that does). split: "train" or "test".
std::unique_ptr<Dataset> open_cifar10(const std::string& dir, const std::string& split, int channels);
std::unique_ptr<Dataset> open_cifar100(const std::string& dir, const std::string& split, int channels);
// The batch files open_cifar10/100 read for `split` (resolved into the
// subfolder when that is where they are); existence is not checked.
std::vector<std::string> cifar_batch_files(const std::string& dir, const std::string& split, bool cifar100);

// The first n images of ds (n <= size), for quick runs and tests.
std::unique_ptr<Dataset> subset(std::shared_ptr<const Dataset> ds, int64_t n);

// An in-memory dataset of equally sized images (tests, synthetic data).
std::unique_ptr<Dataset> memory_dataset(std::vector<Image> images, std::vector<int64_t> labels,
                                        std::vector<std::string> class_names, std::string name = "memory");

// Decodes an encoded image (JPEG/PNG/BMP/TGA) from memory to `channels`.
// Returns false and sets *why when it does not decode.
bool decode_image(const uint8_t* data, size_t bytes, int channels, Image* out, std::string* why);

// The whole file, gunzipped when it is gzip-compressed (zlib). Throws naming
// the path when it is missing, unreadable or a truncated/corrupt gzip stream.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

// Fashion-MNIST's ten class names, in label order.
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace simclr
