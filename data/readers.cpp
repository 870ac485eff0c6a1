// data/readers.cpp - image folders (stb_image), IDX (zlib), CIFAR binary
// batches, in-memory datasets and subsets. See readers.h for the formats and
// the error behaviour.
#include "data/readers.h"

#include <stb_image.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "engine/check.h"

namespace fs = std::filesystem;

namespace simclr {

// ---------------------------------------------------------------- helpers
namespace {

std::string dims_str(const Image& im) {
  return std::to_string(im.height) + "x" + std::to_string(im.width) + "x" + std::to_string(im.channels);
}

std::vector<std::string> numbered_classes(int64_t k) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < k; i++) v.push_back(std::to_string(i));
  return v;
}

bool has_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".tga";
}

bool hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

void check_dir(const std::string& what, const std::string& root) {
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(root, ec), what, ": '", root, "' does not exist");
  SIMCLR_CHECK(fs::is_directory(root, ec), what, ": '", root, "' is not a directory");
}

// Image files under dir (recursively), sorted by path.
std::vector<std::string> list_images(const fs::path& dir, bool recursive) {
  std::vector<std::string> files;
  std::error_code ec;
  auto add = [&](const fs::directory_entry& e) {
    if (hidden(e.path())) return;
    std::error_code ec2;
    if (e.is_regular_file(ec2) && has_image_extension(e.path())) files.push_back(e.path().string());
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
    SIMCLR_CHECK(!ec, "cannot list '", dir.string(), "': ", ec.message());
    for (; it != end; it.increment(ec)) {
      SIMCLR_CHECK(!ec, "cannot list '", dir.string(), "': ", ec.message());
      add(*it);
    }
  } else {
    fs::directory_iterator it(dir, ec), end;
    SIMCLR_CHECK(!ec, "cannot list '", dir.string(), "': ", ec.message());
    for (; it != end; it.increment(ec)) {
      SIMCLR_CHECK(!ec, "cannot list '", dir.string(), "': ", ec.message());
      add(*it);
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool read_bytes(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  f.seekg(0, std::ios::end);
  std::streamoff n = f.tellg();
  if (n < 0) return false;
  f.seekg(0, std::ios::beg);
  out->resize(static_cast<size_t>(n));
  if (n > 0) f.read(reinterpret_cast<char*>(out->data()), n);
  return static_cast<bool>(f);
}

uint32_t be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

}  // namespace

namespace {
// stb_image 2.27 (Debian's) writes past its Huffman tables when a JPEG's
// DHT segment declares more than 256 codes (nothings/stb issues 1289/1291,
// found here by tests/fuzz/fuzz_image.cpp). Such a file is corrupt by the
// JPEG spec; it is refused before stb sees it. Walks every marker segment,
// also the DHT segments between the scans of a progressive JPEG.
bool jpeg_huffman_tables_ok(const uint8_t* d, size_t n) {
  size_t i = 0;  // stb finds the SOI marker after any number of 0xFF fill bytes
  while (i < n && d[i] == 0xFF) i++;
  if (i == 0 || i >= n || d[i] != 0xD8) return true;  // not a JPEG to stb
  i++;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) {  // entropy-coded data: skip to the next marker
      i++;
      continue;
    }
    const uint8_t m = d[i + 1];
    if (m == 0xFF || m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xD8) {
      i += (m == 0xFF) ? 1 : 2;  // fill byte, stuffed zero, RSTn, TEM, SOI: no length
      continue;
    }
    if (m == 0xD9) return true;  // EOI
    const size_t len = static_cast<size_t>(d[i + 2]) << 8 | d[i + 3];
    if (len < 2) return true;  // stb rejects it itself
    if (m == 0xC4) {
      // as stb reads it: the declared length, zeros past the end of the file
      const size_t end = i + 2 + len;
      size_t k = i + 4;
      while (k < end) {
        size_t codes = 0;
        for (size_t b = k + 1; b < k + 17; b++) codes += b < n ? d[b] : 0;
        if (codes > 256) return false;
        k += 17 + codes;
      }
    }
    i += 2 + len;
  }
  return true;
}

// stb_image 2.27 grows its IDAT buffer to a chunk's declared length before
// reading it, so a 222-byte PNG declaring a 2 GB chunk allocates 2 GB
// (found by tests/fuzz/fuzz_image.cpp). A chunk longer than the rest of the
// file is refused first ("" when the chunk list fits, else the reason).
std::string png_chunks_problem(const uint8_t* d, size_t n) {
  if (n < 8 || std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) != 0) return "";
  size_t i = 8;
  while (i + 8 <= n) {
    const uint64_t len = static_cast<uint64_t>(d[i]) << 24 | static_cast<uint64_t>(d[i + 1]) << 16 |
                         static_cast<uint64_t>(d[i + 2]) << 8 | d[i + 3];
    const std::string type(reinterpret_cast<const char*>(d + i + 4), 4);
    if (len > n - i - 8)
      return "corrupt or truncated PNG: chunk '" + type + "' declares " + std::to_string(len) + " bytes, the file has " +
             std::to_string(n - i - 8) + " left";
    if (type == "IEND") return "";
    i += 8 + len + 4;  // length, type, data, CRC
  }
  return "";
}

#ifndef SIMCLR_MAX_IMAGE_PIXELS
#define SIMCLR_MAX_IMAGE_PIXELS (int64_t{1} << 26)  // 64M: 8192 x 8192 (the fuzz build lowers it)
#endif
constexpr int64_t kMaxImagePixels = SIMCLR_MAX_IMAGE_PIXELS;

const char* image_format(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return "JPEG";
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
  if (n >= 4 && std::memcmp(d, "GIF8", 4) == 0) return "GIF";
  return nullptr;
}
}  // namespace

bool decode_image(const uint8_t* data, size_t bytes, int channels, Image* out, std::string* why) {
  if (bytes == 0) {
    *why = "empty file";
    return false;
  }
  if (bytes > static_cast<size_t>(INT32_MAX)) {
    *why = "file too large";
    return false;
  }
  const char* format = image_format(data, bytes);
  if (std::string p = png_chunks_problem(data, bytes); !p.empty()) {
    *why = p;
    return false;
  }
  if (!jpeg_huffman_tables_ok(data, bytes)) {
    *why = "corrupt JPEG (a Huffman table declares more than 256 codes)";
    return false;
  }
  int w = 0, h = 0, n = 0;
  // A header may claim any size (a 60-byte BMP of 11 x 16 million pixels,
  // found by tests/fuzz/fuzz_image.cpp, took 30 s and 550 MB to "decode"):
  // the size is checked before anything is allocated.
  if (stbi_info_from_memory(data, static_cast<int>(bytes), &w, &h, &n) &&
      std::abs(static_cast<int64_t>(w)) * std::abs(static_cast<int64_t>(h)) > kMaxImagePixels) {  // BMP: h < 0 top-down
    *why = "image of " + std::to_string(std::abs(w)) + "x" + std::to_string(std::abs(h)) + " pixels is larger than the " +
           std::to_string(kMaxImagePixels >> 20) + "M pixels this reader decodes (downscale it first)";
    return false;
  }
  uint8_t* px = stbi_load_from_memory(data, static_cast<int>(bytes), &w, &h, &n, 0);
  if (!px) {
    std::string r = stbi_failure_reason() ? stbi_failure_reason() : "unknown decoder error";
    // stb tries each format in turn, and a file its own decoder gave up on
    // ends with another format's complaint (a truncated JPEG: "bad png sig"):
    // name the format the file claims to be, and not the other one's message.
    if (format) {
      std::string lower;
      for (char c : r) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string mine;
      for (const char* c = format; *c; c++) mine += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
      for (const char* other : {"png", "bmp", "gif", "psd", "pic", "pnm", "hdr", "tga", "unknown image type"})
        if (lower.find(other) != std::string::npos && mine != other) r = "its data end early or are corrupt";
    }
    *why = std::string(format ? std::string("corrupt or truncated ") + format + ": " : "") + r;
    return false;
  }
  // n: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. Alpha is dropped.
  int base = (n <= 2) ? 1 : 3;
  Image im(h, w, base);
  size_t npix = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < npix; i++)
    for (int c = 0; c < base; c++) im.pixels[i * base + c] = px[i * n + c];
  stbi_image_free(px);
  *out = convert_channels(im, channels);
  return true;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(path, ec), "'", path, "' does not exist");
  SIMCLR_CHECK(fs::is_regular_file(path, ec), "'", path, "' is not a regular file");
  gzFile f = gzopen(path.c_str(), "rb");
  SIMCLR_CHECK(f != nullptr, "cannot open '", path, "'");
  gzbuffer(f, 1 << 17);
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) break;
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  std::string m = msg ? msg : "";
  gzclose(f);
  SIMCLR_CHECK(err == Z_OK || err == Z_STREAM_END, "cannot read '", path, "': ", m,
               " (truncated or corrupt gzip file?)");
  return out;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

// ---------------------------------------------------------------- files on disk (folders)
namespace {

class FileDataset : public Dataset {
 public:
  FileDataset(std::string kind, std::string root, std::vector<std::string> files, std::vector<int64_t> labels,
              std::vector<std::string> classes, int channels, bool strict)
      : kind_(std::move(kind)), root_(std::move(root)), files_(std::move(files)), labels_(std::move(labels)),
        classes_(std::move(classes)), channels_(channels), strict_(strict) {}

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int channels() const override { return channels_; }
  int height() const override { return 0; }
  int width() const override { return 0; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  int64_t skipped() const override {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<int64_t>(bad_.size());
  }
  std::string describe() const override {
    return kind_ + " '" + root_ + "': " + std::to_string(size()) + " images, " + std::to_string(classes_.size()) +
           " classes, " + std::to_string(channels_) + " channel(s)";
  }

  Sample get(int64_t i) const override {
    SIMCLR_ASSERT(i >= 0 && i < size());
    int64_t n = size();
    for (int64_t k = 0; k < n; k++) {
      int64_t j = (i + k) % n;
      if (k > 0 && known_bad(j)) continue;
      Sample s;
      std::string why;
      if (load(j, &s.image, &why)) {
        s.label = labels_.empty() ? -1 : labels_[j];
        return s;
      }
      SIMCLR_CHECK(!strict_, kind_, ": cannot decode '", files_[j], "': ", why,
                   " (strict mode: data.strict = true in a run config, --strict for simclr embed; without it bad images are "
                   "skipped)");
      mark_bad(j, why);
    }
    fail(kind_, " '", root_, "': none of its ", n, " images decodes");
  }

 private:
  bool load(int64_t j, Image* out, std::string* why) const {
    std::vector<uint8_t> bytes;
    if (!read_bytes(files_[j], &bytes)) {
      *why = "cannot read the file";
      return false;
    }
    return decode_image(bytes.data(), bytes.size(), channels_, out, why);
  }
  bool known_bad(int64_t j) const {
    std::lock_guard<std::mutex> g(mu_);
    return bad_.count(j) != 0;
  }
  void mark_bad(int64_t j, const std::string& why) const {
    std::lock_guard<std::mutex> g(mu_);
    if (!bad_.insert(j).second) return;
    if (bad_.size() <= 10)
      std::fprintf(stderr, "warning: %s: skipping '%s': %s\n", kind_.c_str(), files_[j].c_str(), why.c_str());
    else if (bad_.size() % 1000 == 0)
      std::fprintf(stderr, "warning: %s: %zu images skipped so far\n", kind_.c_str(), bad_.size());
  }

  std::string kind_, root_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;  // empty: unlabelled
  std::vector<std::string> classes_;
  int channels_;
  bool strict_;
  mutable std::mutex mu_;
  mutable std::set<int64_t> bad_;
};

}  // namespace

std::unique_ptr<Dataset> open_image_folder(const std::string& root, int channels, bool strict) {
  SIMCLR_CHECK(channels == 1 || channels == 3, "image-folder: channels must be 1 or 3, got ", channels);
  check_dir("image-folder", root);
  std::vector<std::string> classes;
  std::error_code ec;
  fs::directory_iterator it(root, ec), end;
  SIMCLR_CHECK(!ec, "image-folder: cannot list '", root, "': ", ec.message());
  for (; it != end; it.increment(ec)) {
    SIMCLR_CHECK(!ec, "image-folder: cannot list '", root, "': ", ec.message());
    std::error_code ec2;
    if (!hidden(it->path()) && it->is_directory(ec2)) classes.push_back(it->path().filename().string());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    bool loose = !list_images(root, false).empty();
    fail("image-folder: '", root, "' has no class subfolders (expected root/<class>/<image>)",
         loose ? "; it holds images directly: use dataset \"flat-folder\" for unlabelled images" : "");
  }
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (size_t k = 0; k < classes.size(); k++) {
    std::vector<std::string> f = list_images(fs::path(root) / classes[k], true);
    for (auto& p : f) {
      files.push_back(std::move(p));
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  SIMCLR_CHECK(!files.empty(), "image-folder: '", root, "' contains no images (looked for .jpg .jpeg .png .bmp .tga in ",
               classes.size(), " class subfolders)");
  return std::make_unique<FileDataset>("image-folder", root, std::move(files), std::move(labels), std::move(classes),
                                       channels, strict);
}

std::unique_ptr<Dataset> open_flat_folder(const std::string& root, int channels, bool strict) {
  SIMCLR_CHECK(channels == 1 || channels == 3, "flat-folder: channels must be 1 or 3, got ", channels);
  check_dir("flat-folder", root);
  std::vector<std::string> files = list_images(root, false);
  SIMCLR_CHECK(!files.empty(), "flat-folder: '", root, "' contains no images (looked for .jpg .jpeg .png .bmp .tga)");
  return std::make_unique<FileDataset>("flat-folder", root, std::move(files), std::vector<int64_t>{},
                                       std::vector<std::string>{}, channels, strict);
}

// ---------------------------------------------------------------- in memory (IDX, CIFAR, tests)
namespace {

// N images of H x W x C u8, stored contiguously; converted to `channels` on get().
class ArrayDataset : public Dataset {
 public:
  ArrayDataset(std::string desc, std::vector<uint8_t> pixels, int64_t n, int h, int w, int c, int channels,
               std::vector<int64_t> labels, std::vector<std::string> classes)
      : desc_(std::move(desc)), pixels_(std::move(pixels)), n_(n), h_(h), w_(w), c_(c), channels_(channels),
        labels_(std::move(labels)), classes_(std::move(classes)) {
    SIMCLR_ASSERT(static_cast<int64_t>(pixels_.size()) == n * h * w * c);
    SIMCLR_ASSERT(labels_.empty() || static_cast<int64_t>(labels_.size()) == n);
  }
  int64_t size() const override { return n_; }
  int channels() const override { return channels_; }
  int height() const override { return h_; }
  int width() const override { return w_; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::string describe() const override {
    return desc_ + ": " + std::to_string(n_) + " images " + std::to_string(h_) + "x" + std::to_string(w_) + "x" +
           std::to_string(channels_) + ", " + std::to_string(classes_.size()) + " classes";
  }
  Sample get(int64_t i) const override {
    SIMCLR_ASSERT(i >= 0 && i < n_);
    Sample s;
    Image im(h_, w_, c_);
    size_t sz = static_cast<size_t>(h_) * w_ * c_;
    std::memcpy(im.pixels.data(), pixels_.data() + static_cast<size_t>(i) * sz, sz);
    s.image = (c_ == channels_) ? std::move(im) : convert_channels(im, channels_);
    s.label = labels_.empty() ? -1 : labels_[i];
    return s;
  }

 private:
  std::string desc_;
  std::vector<uint8_t> pixels_;
  int64_t n_;
  int h_, w_, c_, channels_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

struct IdxArray {
  std::vector<uint32_t> dims;
  size_t offset = 0;  // start of the data
};

IdxArray parse_idx(const std::vector<uint8_t>& b, const std::string& path, std::initializer_list<uint32_t> ndims_ok,
                   const char* what) {
  SIMCLR_CHECK(b.size() >= 4, "IDX ", what, " file '", path, "': too short for an IDX header (", b.size(), " bytes)");
  uint32_t magic = be32(b.data());
  uint32_t nd = b[3];
  bool nd_ok = std::find(ndims_ok.begin(), ndims_ok.end(), nd) != ndims_ok.end();
  char hex[16];
  std::snprintf(hex, sizeof(hex), "0x%08x", magic);
  const char* expected = std::string(what) == "labels" ? "0x00000801" : "0x00000803 or 0x00000804";
  SIMCLR_CHECK(b[0] == 0 && b[1] == 0 && nd_ok, "IDX ", what, " file '", path, "': bad magic number ", hex,
               " (expected ", expected, "): not an IDX ", what, " file");
  SIMCLR_CHECK(b[2] == 0x08, "IDX ", what, " file '", path, "': element type 0x", std::hex, static_cast<int>(b[2]),
               " is not supported (only unsigned bytes, 0x08)");
  IdxArray a;
  SIMCLR_CHECK(b.size() >= 4 + 4 * static_cast<size_t>(nd), "IDX ", what, " file '", path,
               "': truncated header (", b.size(), " bytes)");
  uint64_t total = 1;
  std::string shape;
  for (uint32_t d = 0; d < nd; d++) {
    uint32_t v = be32(b.data() + 4 + 4 * d);
    a.dims.push_back(v);
    total *= v;
    SIMCLR_CHECK(total < (1ull << 40), "IDX ", what, " file '", path, "': implausible dimensions");
    shape += (d ? " x " : "") + std::to_string(v);
  }
  a.offset = 4 + 4 * static_cast<size_t>(nd);
  uint64_t have = b.size() - a.offset;
  SIMCLR_CHECK(have >= total, "IDX ", what, " file '", path, "' is truncated: its header says ", shape, " = ", total,
               " bytes of data, the file has ", have);
  SIMCLR_CHECK(have == total, "IDX ", what, " file '", path, "': its header says ", shape, " = ", total,
               " bytes of data, but the file has ", have - total, " bytes more (inconsistent header)");
  SIMCLR_CHECK(a.dims[0] > 0, "IDX ", what, " file '", path, "' holds no items");
  return a;
}

}  // namespace

std::unique_ptr<Dataset> open_idx(const std::string& images_path, const std::string& labels_path, int channels,
                                  std::vector<std::string> class_names, std::string name) {
  SIMCLR_CHECK(channels == 1 || channels == 3, "idx: channels must be 1 or 3, got ", channels);
  std::vector<uint8_t> ib = read_maybe_gzip(images_path);
  IdxArray ia = parse_idx(ib, images_path, {3, 4}, "images");
  int64_t n = ia.dims[0];
  int h = static_cast<int>(ia.dims[1]), w = static_cast<int>(ia.dims[2]);
  int c = ia.dims.size() == 4 ? static_cast<int>(ia.dims[3]) : 1;
  SIMCLR_CHECK(h > 0 && w > 0, "IDX images file '", images_path, "': zero-sized images");
  SIMCLR_CHECK(c == 1 || c == 3, "IDX images file '", images_path, "': ", c, " channels (expected 1 or 3)");
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    std::vector<uint8_t> lb = read_maybe_gzip(labels_path);
    IdxArray la = parse_idx(lb, labels_path, {1}, "labels");
    SIMCLR_CHECK(la.dims[0] == ia.dims[0], "IDX: '", images_path, "' has ", ia.dims[0], " images but '", labels_path,
                 "' has ", la.dims[0], " labels");
    labels.resize(static_cast<size_t>(n));
    int64_t maxl = 0;
    for (int64_t i = 0; i < n; i++) maxl = std::max<int64_t>(maxl, labels[i] = lb[la.offset + i]);
    if (class_names.empty()) class_names = numbered_classes(maxl + 1);
    SIMCLR_CHECK(maxl < static_cast<int64_t>(class_names.size()), "IDX labels file '", labels_path, "': label ", maxl,
                 " out of range for ", class_names.size(), " classes");
  } else {
    class_names.clear();
  }
  ib.erase(ib.begin(), ib.begin() + static_cast<std::ptrdiff_t>(ia.offset));
  return std::make_unique<ArrayDataset>(name + " '" + images_path + "'", std::move(ib), n, h, w, c, channels,
                                        std::move(labels), std::move(class_names));
}

std::vector<std::string> cifar_batch_files(const std::string& dir_in, const std::string& split, bool hundred) {
  std::vector<std::string> names;
  if (hundred) names = {split == "train" ? "train.bin" : "test.bin"};
  else if (split == "train")
    names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
  else names = {"test_batch.bin"};
  fs::path dir = dir_in;
  std::error_code ec;
  const char* sub = hundred ? "cifar-100-binary" : "cifar-10-batches-bin";
  if (!fs::exists(dir / names[0], ec) && fs::exists(dir / sub / names[0], ec)) dir = dir / sub;
  std::vector<std::string> out;
  for (const std::string& n : names) out.push_back((dir / n).string());
  return out;
}

namespace {

std::vector<std::string> read_names(const fs::path& p, size_t expect) {
  std::vector<std::string> names;
  std::ifstream f(p);
  if (!f) return {};
  std::string line;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names.size() == expect ? names : std::vector<std::string>{};
}

std::unique_ptr<Dataset> open_cifar(const std::string& dir_in, const std::string& split, int channels, bool hundred) {
  const char* kind = hundred ? "cifar100" : "cifar10";
  SIMCLR_CHECK(channels == 1 || channels == 3, kind, ": channels must be 1 or 3, got ", channels);
  SIMCLR_CHECK(split == "train" || split == "test", kind, ": split must be \"train\" or \"test\", got \"", split, "\"");
  check_dir(kind, dir_in);
  std::vector<std::string> files = cifar_batch_files(dir_in, split, hundred);
  fs::path dir = fs::path(files[0]).parent_path();
  std::error_code ec;
  const size_t label_bytes = hundred ? 2 : 1, rec = label_bytes + 3072;
  const int64_t num_classes = hundred ? 100 : 10;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (const std::string& f : files) {
    fs::path p = f;
    SIMCLR_CHECK(fs::exists(p, ec), kind, ": '", p.string(), "' does not exist (expected the binary version: ",
                 hundred ? "train.bin, test.bin" : "data_batch_1..5.bin, test_batch.bin", ")");
    std::vector<uint8_t> b;
    SIMCLR_CHECK(read_bytes(p.string(), &b), kind, ": cannot read '", p.string(), "'");
    SIMCLR_CHECK(!b.empty() && b.size() % rec == 0, kind, ": '", p.string(), "' has ", b.size(),
                 " bytes, not a whole number of ", rec, "-byte records (truncated or not a ", kind, " batch)");
    size_t nrec = b.size() / rec;
    size_t base = pixels.size();
    pixels.resize(base + nrec * 3072);
    for (size_t r = 0; r < nrec; r++) {
      const uint8_t* q = b.data() + r * rec;
      int64_t label = q[label_bytes - 1];  // CIFAR-100: [coarse, fine] -> fine
      SIMCLR_CHECK(label < num_classes, kind, ": '", p.string(), "' record ", r, " has label ", label,
                   " (expected < ", num_classes, ")");
      labels.push_back(label);
      // planar R, G, B (1024 each, row-major 32 x 32) -> HWC
      uint8_t* out = pixels.data() + base + r * 3072;
      for (int i = 0; i < 1024; i++)
        for (int c = 0; c < 3; c++) out[i * 3 + c] = q[label_bytes + c * 1024 + i];
    }
  }
  std::vector<std::string> classes =
      read_names(dir / (hundred ? "fine_label_names.txt" : "batches.meta.txt"), static_cast<size_t>(num_classes));
  if (classes.empty()) classes = numbered_classes(num_classes);
  int64_t n = static_cast<int64_t>(labels.size());
  return std::make_unique<ArrayDataset>(std::string(kind) + " " + split + " '" + dir.string() + "'", std::move(pixels),
                                        n, 32, 32, 3, channels, std::move(labels), std::move(classes));
}

}  // namespace

std::unique_ptr<Dataset> open_cifar10(const std::string& dir, const std::string& split, int channels) {
  return open_cifar(dir, split, channels, false);
}
std::unique_ptr<Dataset> open_cifar100(const std::string& dir, const std::string& split, int channels) {
  return open_cifar(dir, split, channels, true);
}

std::unique_ptr<Dataset> memory_dataset(std::vector<Image> images, std::vector<int64_t> labels,
                                        std::vector<std::string> class_names, std::string name) {
  SIMCLR_CHECK(!images.empty(), "memory_dataset: no images");
  SIMCLR_CHECK(labels.empty() || labels.size() == images.size(), "memory_dataset: ", images.size(), " images but ",
               labels.size(), " labels");
  const Image& f = images[0];
  std::vector<uint8_t> px;
  px.reserve(images.size() * f.pixels.size());
  for (const Image& im : images) {
    SIMCLR_CHECK(im.height == f.height && im.width == f.width && im.channels == f.channels,
                 "memory_dataset: image of ", dims_str(im), " among images of ", dims_str(f));
    px.insert(px.end(), im.pixels.begin(), im.pixels.end());
  }
  int64_t n = static_cast<int64_t>(images.size());
  return std::make_unique<ArrayDataset>(std::move(name), std::move(px), n, f.height, f.width, f.channels, f.channels,
                                        std::move(labels), std::move(class_names));
}

namespace {
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> ds, int64_t n) : ds_(std::move(ds)), n_(n) {}
  int64_t size() const override { return n_; }
  int channels() const override { return ds_->channels(); }
  int height() const override { return ds_->height(); }
  int width() const override { return ds_->width(); }
  const std::vector<std::string>& class_names() const override { return ds_->class_names(); }
  Sample get(int64_t i) const override {
    SIMCLR_ASSERT(i >= 0 && i < n_);
    return ds_->get(i);
  }
  int64_t skipped() const override { return ds_->skipped(); }
  std::string describe() const override {
    return ds_->describe() + " (first " + std::to_string(n_) + " used)";
  }

 private:
  std::shared_ptr<const Dataset> ds_;
  int64_t n_;
};
}  // namespace

std::unique_ptr<Dataset> subset(std::shared_ptr<const Dataset> ds, int64_t n) {
  SIMCLR_CHECK(n >= 1 && n <= ds->size(), "subset of ", n, " images from a dataset of ", ds->size());
  return std::make_unique<SubsetDataset>(std::move(ds), n);
}

}  // namespace simclr
