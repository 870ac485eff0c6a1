// data/packed.h - the packed dataset format: one file of raw u8 pixels plus a
// checksummed header and tables, read by memory map (no decoding while
// training). `simclr pack` writes it (tools/cli/pack_cli.h), `simclr info`
// shows it, the loader reads it as `data.dataset: "packed"`.
//
// Byte layout (version 1, all integers little-endian; docs/data.md has the
// table):
//   [0, 128)         header (PackedHeader below), its last 4 bytes the CRC-32
//                    of the first 124
//   [128, P)         pixels: image i is h_i x w_i x C bytes (HWC) at
//                    128 + offset_i; images contiguous in index order
//   [P, file end)    tables (tables_offset = P rounded up to 64): the image
//                    index (count x {u64 offset, u32 h, u32 w}), the labels
//                    (count x i32, only when labelled), the strings (u32
//                    length + bytes each: source kind, source description,
//                    then the class names), the pixel chunk CRC-32s (one u32
//                    per chunk_bytes of pixels, the last chunk shorter);
//                    the header's tables_crc covers [tables_offset, end).
// The header is written last, after every other byte, and the file is
// renamed into place only after an fsync: an interrupted pack leaves only a
// temporary file whose header is zeros (no valid magic).
//
// Opening checks, each failure a simclr::Error naming the file and what is
// wrong: the size (at least a header), the magic, the version (a newer one:
// "written by a newer simclr"), the header CRC, the file size against the
// header (truncated / trailing bytes), every table and every image inside the
// file (overflow-safe arithmetic), the tables' CRC, labels in range, class
// names consistent. The pixel chunk CRCs are checked by verify_packed()
// (`simclr info --verify`) or at open with PackedOpenOptions::verify.
//
// Resizing when packing (PackOptions::max_side = M > 0): an image whose
// shorter side s exceeds M is downscaled to shorter side M and longer side
// round(L * M / s) (at least 1), aspect kept, by area averaging (every output
// pixel the coverage-weighted mean of the source pixels under it, rounded to
// nearest; PIL's BOX filter, OpenCV's INTER_AREA). Images with s <= M are kept
// as they are. M = 0 keeps every size.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/readers.h"

namespace simclr {

constexpr char kPackedMagic[9] = "SIMCLRPK";
constexpr uint32_t kPackedVersion = 1;
constexpr uint32_t kPackedHeaderBytes = 128;

// The fixed header (what `simclr info` prints, what the tests craft).
struct PackedHeader {
  uint32_t version = kPackedVersion;
  uint64_t count = 0;          // images
  uint32_t channels = 0;       // 1 or 3
  uint32_t flags = 0;          // bit 0: labelled; bit 1: all images one size
  uint32_t chunk_bytes = 0;    // pixel bytes per checksum chunk
  uint32_t num_classes = 0;
  uint32_t max_side = 0;       // --max-side used when packing (0: sizes kept)
  uint64_t pixels_bytes = 0;   // [128, 128 + pixels_bytes)
  uint64_t tables_offset = 0;  // multiple of 64, >= 128 + pixels_bytes
  uint64_t index_offset = 0, labels_offset = 0, strings_offset = 0, strings_bytes = 0, checksums_offset = 0;
  uint64_t num_chunks = 0;
  uint64_t file_bytes = 0;     // the whole file
  uint32_t tables_crc = 0;     // CRC-32 of [tables_offset, file_bytes)
  uint32_t header_crc = 0;     // CRC-32 of header bytes [0, 124)
};
// Header field byte offsets (for tests that craft files).
namespace packed_field {
constexpr size_t kMagic = 0, kVersion = 8, kHeaderBytes = 12, kCount = 16, kChannels = 24, kFlags = 28,
                 kChunkBytes = 32, kNumClasses = 36, kMaxSide = 40, kPixelsBytes = 48, kTablesOffset = 56,
                 kIndexOffset = 64, kLabelsOffset = 72, kStringsOffset = 80, kStringsBytes = 88,
                 kChecksumsOffset = 96, kNumChunks = 104, kFileBytes = 112, kTablesCrc = 120, kHeaderCrc = 124;
}
constexpr uint32_t kPackedLabelled = 1, kPackedFixedSize = 2;

// What verify_packed() found: the chunks whose CRC does not match.
struct PackedChunkError {
  uint64_t chunk = 0;
  uint64_t begin = 0, end = 0;             // file byte range of the chunk
  int64_t first_image = 0, last_image = 0;  // images with bytes in it
  uint32_t stored = 0, computed = 0;
};

// A packed file, opened and validated. Also a Dataset (get(i) copies image i
// out of the mapping, converted to the requested channel count).
class PackedDataset : public Dataset {
 public:
  virtual const PackedHeader& header() const = 0;
  virtual const std::string& path() const = 0;
  virtual const std::string& source_kind() const = 0;  // "fashion-mnist", "image-folder", ...
  virtual const std::string& source_description() const = 0;
  virtual int stored_channels() const = 0;
  virtual void image_size(int64_t i, int* h, int* w) const = 0;
  virtual int64_t label(int64_t i) const = 0;  // -1 unlabelled
  // Checks every pixel chunk's CRC; returns the bad ones (empty: all good).
  // progress(done, total) in chunks, may be empty.
  virtual std::vector<PackedChunkError> verify(const std::function<void(uint64_t, uint64_t)>& progress = {}) const = 0;
};

struct PackedOpenOptions {
  int channels = 0;     // 0: as stored
  bool verify = false;  // check every pixel chunk now (reads the whole file)
};
std::unique_ptr<PackedDataset> open_packed(const std::string& path, const PackedOpenOptions& opt = {});

// True when `path` is a regular file starting with the packed magic.
bool is_packed_file(const std::string& path);

// The source kind recorded in a packed file's strings ("" when it cannot be
// read: any problem is left for open_packed to report). For the config's
// per-dataset defaults.
std::string packed_source_kind(const std::string& path);

// "bad chunk" message for a list from verify(): names the file, each chunk
// (up to 10), its byte range and its images.
std::string describe_chunk_errors(const std::string& path, const std::vector<PackedChunkError>& bad, uint64_t chunks);

// ---- writing
struct PackOptions {
  int max_side = 256;     // 0: keep sizes
  int threads = 0;        // 0: hardware_concurrency
  bool force = false;     // replace an existing output
  uint32_t chunk_bytes = 4u << 20;
  std::string source_kind;  // recorded (config defaults); "" -> "unknown"
  std::vector<std::string> inputs;  // paths the output must not be (check_output_path)
  // Called from the writing thread after each image (done, total).
  std::function<void(int64_t, int64_t)> progress;
};
struct PackResult {
  int64_t images = 0, resized = 0, skipped = 0;
  uint64_t bytes = 0;
  double seconds = 0;
};
// Packs src.get(0..size-1) (its channel count, its labels and class names)
// into `out`: temporary file in the same folder, fsync, rename. Throws
// simclr::Error naming the path; leaves no temporary file on an error.
PackResult pack_dataset(const Dataset& src, const std::string& out, const PackOptions& opt);

// The area-averaging downscale of the packing rule above (M = max_side).
Image shrink_to_max_side(const Image& im, int max_side);

// For tests and the fuzzer: recomputes the tables CRC (when the tables range
// in the header lies inside `file`) and then the header CRC, in place, so a
// crafted field reaches the checks behind the checksums.
void packed_reseal(std::vector<uint8_t>& file);
void packed_reseal(uint8_t* data, size_t size);

}  // namespace simclr
