// data/packed.cpp - the packed dataset format: writer and memory-mapped
// reader (see packed.h for the layout and the checks).
#include "data/packed.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "engine/check.h"
#include "engine/fileio.h"

namespace fs = std::filesystem;

namespace simclr {

namespace {

constexpr uint64_t kIndexEntryBytes = 16;
constexpr uint32_t kMaxSidePixels = 1u << 20;

uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian hosts only (x86-64, aarch64)
  return v;
}
uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void wr32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void wr64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// [off, off + len) inside [lo, hi], without overflow.
bool range_in(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi) {
  return off >= lo && off <= hi && len <= hi - off;
}

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

PackedHeader parse_header(const uint8_t* h) {
  using namespace packed_field;
  PackedHeader p;
  p.version = rd32(h + kVersion);
  p.count = rd64(h + kCount);
  p.channels = rd32(h + kChannels);
  p.flags = rd32(h + kFlags);
  p.chunk_bytes = rd32(h + kChunkBytes);
  p.num_classes = rd32(h + kNumClasses);
  p.max_side = rd32(h + kMaxSide);
  p.pixels_bytes = rd64(h + kPixelsBytes);
  p.tables_offset = rd64(h + kTablesOffset);
  p.index_offset = rd64(h + kIndexOffset);
  p.labels_offset = rd64(h + kLabelsOffset);
  p.strings_offset = rd64(h + kStringsOffset);
  p.strings_bytes = rd64(h + kStringsBytes);
  p.checksums_offset = rd64(h + kChecksumsOffset);
  p.num_chunks = rd64(h + kNumChunks);
  p.file_bytes = rd64(h + kFileBytes);
  p.tables_crc = rd32(h + kTablesCrc);
  p.header_crc = rd32(h + kHeaderCrc);
  return p;
}

void write_header(uint8_t* h, const PackedHeader& p) {
  using namespace packed_field;
  std::memset(h, 0, kPackedHeaderBytes);
  std::memcpy(h + kMagic, kPackedMagic, 8);
  wr32(h + kVersion, p.version);
  wr32(h + kHeaderBytes, kPackedHeaderBytes);
  wr64(h + kCount, p.count);
  wr32(h + kChannels, p.channels);
  wr32(h + kFlags, p.flags);
  wr32(h + kChunkBytes, p.chunk_bytes);
  wr32(h + kNumClasses, p.num_classes);
  wr32(h + kMaxSide, p.max_side);
  wr64(h + kPixelsBytes, p.pixels_bytes);
  wr64(h + kTablesOffset, p.tables_offset);
  wr64(h + kIndexOffset, p.index_offset);
  wr64(h + kLabelsOffset, p.labels_offset);
  wr64(h + kStringsOffset, p.strings_offset);
  wr64(h + kStringsBytes, p.strings_bytes);
  wr64(h + kChecksumsOffset, p.checksums_offset);
  wr64(h + kNumChunks, p.num_chunks);
  wr64(h + kFileBytes, p.file_bytes);
  wr32(h + kTablesCrc, p.tables_crc);
  wr32(h + kHeaderCrc, crc32(h, kHeaderCrc));
}

// ---------------------------------------------------------------- reader
class MappedPacked : public PackedDataset {
 public:
  MappedPacked(const std::string& path, const PackedOpenOptions& opt) : path_(path) {
    SIMCLR_CHECK(opt.channels == 0 || opt.channels == 1 || opt.channels == 3, "packed dataset '", path,
                 "': channels must be 1 or 3, got ", opt.channels);
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    SIMCLR_CHECK(fd_ >= 0, "packed dataset '", path, "': cannot open: ", std::strerror(errno));
    try {
      map_and_validate(opt);
    } catch (...) {
      release();  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  ~MappedPacked() override { release(); }

 private:
  void map_and_validate(const PackedOpenOptions& opt) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) bad("cannot stat: ", std::strerror(errno));
    if (!S_ISREG(st.st_mode)) bad("not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) bad("the file is empty (0 bytes): not a simclr packed dataset");
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) bad("cannot map the file into memory: ", std::strerror(errno));
    map_ = static_cast<const uint8_t*>(m);
    validate();
    channels_ = opt.channels == 0 ? static_cast<int>(h_.channels) : opt.channels;
    if (opt.verify) {
      std::vector<PackedChunkError> e = verify({});
      if (!e.empty()) throw Error(describe_chunk_errors(path_, e, h_.num_chunks));
    }
  }
  void release() {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    if (fd_ >= 0) ::close(fd_);
    map_ = nullptr;
    fd_ = -1;
  }

 public:
  // ---- Dataset
  int64_t size() const override { return static_cast<int64_t>(h_.count); }
  int channels() const override { return channels_; }
  int height() const override { return (h_.flags & kPackedFixedSize) ? static_cast<int>(hs_[0]) : 0; }
  int width() const override { return (h_.flags & kPackedFixedSize) ? static_cast<int>(ws_[0]) : 0; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::string describe() const override {
    std::string s = "packed '" + path_ + "' (" + source_kind_ + "): " + std::to_string(h_.count) + " images ";
    if (h_.flags & kPackedFixedSize)
      s += std::to_string(hs_[0]) + "x" + std::to_string(ws_[0]) + "x" + std::to_string(channels_);
    else
      s += "of varying size, " + std::to_string(channels_) + " channel(s)";
    return s + ", " + std::to_string(classes_.size()) + " classes";
  }
  Sample get(int64_t i) const override {
    SIMCLR_ASSERT(i >= 0 && i < size());
    const size_t k = static_cast<size_t>(i);
    Sample s;
    Image im(static_cast<int>(hs_[k]), static_cast<int>(ws_[k]), static_cast<int>(h_.channels));
    std::memcpy(im.pixels.data(), map_ + kPackedHeaderBytes + offsets_[k], im.pixels.size());
    s.image = static_cast<int>(h_.channels) == channels_ ? std::move(im) : convert_channels(im, channels_);
    s.label = labels_.empty() ? -1 : labels_[k];
    return s;
  }

  // ---- PackedDataset
  const PackedHeader& header() const override { return h_; }
  const std::string& path() const override { return path_; }
  const std::string& source_kind() const override { return source_kind_; }
  const std::string& source_description() const override { return source_desc_; }
  int stored_channels() const override { return static_cast<int>(h_.channels); }
  void image_size(int64_t i, int* h, int* w) const override {
    SIMCLR_ASSERT(i >= 0 && i < size());
    *h = static_cast<int>(hs_[static_cast<size_t>(i)]);
    *w = static_cast<int>(ws_[static_cast<size_t>(i)]);
  }
  int64_t label(int64_t i) const override {
    SIMCLR_ASSERT(i >= 0 && i < size());
    return labels_.empty() ? -1 : labels_[static_cast<size_t>(i)];
  }
  std::vector<PackedChunkError> verify(const std::function<void(uint64_t, uint64_t)>& progress) const override {
    std::vector<PackedChunkError> bad;
    const uint8_t* px = map_ + kPackedHeaderBytes;
    size_t img = 0;  // first image whose bytes end after the chunk's start
    for (uint64_t c = 0; c < h_.num_chunks; c++) {
      const uint64_t b = c * h_.chunk_bytes, e = std::min<uint64_t>(b + h_.chunk_bytes, h_.pixels_bytes);
      const uint32_t stored = rd32(map_ + h_.checksums_offset + 4 * c);
      const uint32_t got = crc32(px + b, static_cast<size_t>(e - b));
      if (got != stored) {
        PackedChunkError pe;
        pe.chunk = c;
        pe.begin = kPackedHeaderBytes + b;
        pe.end = kPackedHeaderBytes + e;
        pe.stored = stored;
        pe.computed = got;
        // images overlapping [b, e): contiguous layout, offsets increasing
        while (img + 1 < offsets_.size() && offsets_[img] + bytes_of(img) <= b) img++;
        size_t last = img;
        while (last + 1 < offsets_.size() && offsets_[last + 1] < e) last++;
        pe.first_image = static_cast<int64_t>(img);
        pe.last_image = static_cast<int64_t>(last);
        bad.push_back(pe);
      }
      if (progress) progress(c + 1, h_.num_chunks);
    }
    return bad;
  }

 private:
  template <class... A>
  [[noreturn]] void bad(const A&... a) const {
    fail("packed dataset '", path_, "': ", a...);
  }
  uint64_t bytes_of(size_t i) const { return uint64_t{hs_[i]} * ws_[i] * h_.channels; }

  void validate() {
    using namespace packed_field;
    const uint8_t* m = map_;
    const bool magic_ok = std::memcmp(m, kPackedMagic, std::min<uint64_t>(size_, 8)) == 0;
    if (!magic_ok || size_ < 8) {
      if (magic_ok) bad("truncated: ", size_, " bytes, shorter than the ", kPackedHeaderBytes, "-byte header");
      std::string shown;
      for (size_t i = 0; i < std::min<uint64_t>(size_, 8); i++)
        shown += (m[i] >= 32 && m[i] < 127) ? static_cast<char>(m[i]) : '.';
      bad("not a simclr packed dataset: wrong magic \"", shown, "\" (expected \"", kPackedMagic,
          "\"; write one with simclr pack)");
    }
    if (size_ < kPackedHeaderBytes)
      bad("truncated: ", size_, " bytes, shorter than the ", kPackedHeaderBytes, "-byte header");
    h_ = parse_header(m);
    if (h_.version == 0) bad("invalid format version 0");
    if (h_.version > kPackedVersion)
      bad("written by a newer simclr (format version ", h_.version, ", this build reads up to version ",
          kPackedVersion, "): update simclr or repack the data with this version");
    const uint32_t hcrc = crc32(m, kHeaderCrc);
    if (hcrc != h_.header_crc)
      bad("header checksum mismatch (stored ", hex32(h_.header_crc), ", computed ", hex32(hcrc),
          "): the header is corrupt");
    if (rd32(m + kHeaderBytes) != kPackedHeaderBytes)
      bad("header size ", rd32(m + kHeaderBytes), " (expected ", kPackedHeaderBytes, ")");
    if (size_ < h_.file_bytes)
      bad("truncated: the header says ", h_.file_bytes, " bytes, the file has ", size_, " (",
          h_.file_bytes - size_, " missing)");
    if (size_ > h_.file_bytes)
      bad("the file has ", size_ - h_.file_bytes, " bytes more than the ", h_.file_bytes,
          " its header says (trailing data: not a file simclr pack wrote)");
    if (h_.channels != 1 && h_.channels != 3) bad("header says ", h_.channels, " channels (expected 1 or 3)");
    if (h_.count == 0) bad("holds no images");
    if (h_.chunk_bytes < 64 || h_.chunk_bytes > (1u << 30))
      bad("chunk size ", h_.chunk_bytes, " bytes out of range [64, 2^30]");
    if (h_.flags & ~(kPackedLabelled | kPackedFixedSize)) bad("unknown flags ", hex32(h_.flags));
    const uint64_t end = size_;
    if (!range_in(kPackedHeaderBytes, h_.pixels_bytes, kPackedHeaderBytes, end))
      bad("pixel area of ", h_.pixels_bytes, " bytes does not fit in the file (", end, " bytes)");
    const uint64_t pix_end = kPackedHeaderBytes + h_.pixels_bytes;
    if (h_.tables_offset < pix_end || h_.tables_offset > end || h_.tables_offset % 64 != 0)
      bad("tables offset ", h_.tables_offset, " is not a multiple of 64 in [", pix_end, ", ", end, "]");
    const uint64_t chunks = h_.pixels_bytes / h_.chunk_bytes + (h_.pixels_bytes % h_.chunk_bytes != 0);
    if (h_.num_chunks != chunks)
      bad("header says ", h_.num_chunks, " checksum chunks, ", h_.pixels_bytes, " pixel bytes in chunks of ",
          h_.chunk_bytes, " make ", chunks);
    auto table = [&](const char* what, uint64_t off, uint64_t n, uint64_t each) {
      if (n > (end - h_.tables_offset) / each || !range_in(off, n * each, h_.tables_offset, end))
        bad("the ", what, " table (", n, " entries of ", each, " bytes at offset ", off,
            ") lies outside the file's tables [", h_.tables_offset, ", ", end, ")");
    };
    table("image index", h_.index_offset, h_.count, kIndexEntryBytes);
    const bool labelled = (h_.flags & kPackedLabelled) != 0;
    if (labelled) table("labels", h_.labels_offset, h_.count, 4);
    table("strings", h_.strings_offset, h_.strings_bytes, 1);
    table("checksums", h_.checksums_offset, h_.num_chunks, 4);
    const uint32_t tcrc = crc32(m + h_.tables_offset, static_cast<size_t>(end - h_.tables_offset));
    if (tcrc != h_.tables_crc)
      bad("tables checksum mismatch (stored ", hex32(h_.tables_crc), ", computed ", hex32(tcrc),
          "): the index, labels, names or checksums are corrupt");

    // strings: source kind, source description, class names
    {
      const uint8_t* s = m + h_.strings_offset;
      uint64_t left = h_.strings_bytes;
      std::vector<std::string> strs;
      const uint64_t want = uint64_t{h_.num_classes} + 2;
      if (want > left / 4 + 1) bad("header says ", h_.num_classes, " classes, the strings table has only ", left, " bytes");
      while (strs.size() < want) {
        if (left < 4) bad("strings table ends inside string ", strs.size(), " of ", want);
        const uint32_t len = rd32(s);
        s += 4;
        left -= 4;
        if (len > left) bad("string ", strs.size(), " of ", len, " bytes runs past the strings table (", left, " left)");
        strs.emplace_back(reinterpret_cast<const char*>(s), len);
        s += len;
        left -= len;
      }
      if (left != 0) bad("strings table has ", left, " bytes after its ", want, " strings");
      source_kind_ = strs[0];
      source_desc_ = strs[1];
      classes_.assign(strs.begin() + 2, strs.end());
    }
    if (labelled && h_.num_classes == 0) bad("labelled, but it names no classes");

    // images and labels
    const size_t n = static_cast<size_t>(h_.count);
    offsets_.resize(n);
    hs_.resize(n);
    ws_.resize(n);
    const uint8_t* ix = m + h_.index_offset;
    uint64_t expect_off = 0;
    for (size_t i = 0; i < n; i++, ix += kIndexEntryBytes) {
      const uint64_t off = rd64(ix);
      const uint32_t hh = rd32(ix + 8), ww = rd32(ix + 12);
      if (hh == 0 || ww == 0 || hh > kMaxSidePixels || ww > kMaxSidePixels)
        bad("image ", i, " has size ", hh, "x", ww, " (each side must be 1 .. ", kMaxSidePixels, ")");
      const uint64_t nb = uint64_t{hh} * ww * h_.channels;
      if (!range_in(off, nb, 0, h_.pixels_bytes))
        bad("image ", i, " (", hh, "x", ww, "x", h_.channels, " = ", nb, " bytes at pixel offset ", off,
            ") lies outside the pixel area of ", h_.pixels_bytes, " bytes");
      if (off != expect_off)
        bad("image ", i, " starts at pixel offset ", off, ", expected ", expect_off,
            " (images are stored contiguously in index order)");
      expect_off = off + nb;
      if ((h_.flags & kPackedFixedSize) && i > 0 && (hh != hs_[0] || ww != ws_[0]))
        bad("header says all images are one size, but image ", i, " is ", hh, "x", ww, " and image 0 ", hs_[0], "x",
            ws_[0]);
      offsets_[i] = off;
      hs_[i] = hh;
      ws_[i] = ww;
    }
    if (expect_off != h_.pixels_bytes)
      bad("the images hold ", expect_off, " bytes, the pixel area ", h_.pixels_bytes);
    if (labelled) {
      labels_.resize(n);
      const uint8_t* lp = m + h_.labels_offset;
      for (size_t i = 0; i < n; i++) {
        const int32_t l = static_cast<int32_t>(rd32(lp + 4 * i));
        if (l < 0 || static_cast<uint32_t>(l) >= h_.num_classes)
          bad("image ", i, " has label ", l, ", out of range for ", h_.num_classes, " classes");
        labels_[i] = l;
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  PackedHeader h_;
  int channels_ = 0;
  std::string source_kind_, source_desc_;
  std::vector<std::string> classes_;
  std::vector<uint64_t> offsets_;
  std::vector<uint32_t> hs_, ws_;
  std::vector<int64_t> labels_;
};

}  // namespace

std::unique_ptr<PackedDataset> open_packed(const std::string& path, const PackedOpenOptions& opt) {
  return std::make_unique<MappedPacked>(path, opt);
}

bool is_packed_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char b[8] = {0};
  const ssize_t n = ::pread(fd, b, 8, 0);
  ::close(fd);
  return n == 8 && std::memcmp(b, kPackedMagic, 8) == 0;
}

std::string packed_source_kind(const std::string& path) {
  if (!is_packed_file(path)) return "";
  try {
    return open_packed(path)->source_kind();
  } catch (const Error&) {
    return "";
  }
}

std::string describe_chunk_errors(const std::string& path, const std::vector<PackedChunkError>& bad, uint64_t chunks) {
  std::string s = "packed dataset '" + path + "': " + std::to_string(bad.size()) + " of " + std::to_string(chunks) +
                  " pixel chunks fail their checksum (the file is corrupt):";
  for (size_t i = 0; i < bad.size() && i < 10; i++) {
    const PackedChunkError& e = bad[i];
    s += "\n  chunk " + std::to_string(e.chunk) + " (bytes " + std::to_string(e.begin) + ".." + std::to_string(e.end) +
         ", images " + std::to_string(e.first_image) + ".." + std::to_string(e.last_image) + "): stored " +
         hex32(e.stored) + ", computed " + hex32(e.computed);
  }
  if (bad.size() > 10) s += "\n  ... and " + std::to_string(bad.size() - 10) + " more";
  return s;
}

// ---------------------------------------------------------------- resize
Image shrink_to_max_side(const Image& im, int max_side) {
  const int H = im.height, W = im.width, C = im.channels;
  const int s = std::min(H, W), L = std::max(H, W);
  if (max_side <= 0 || s <= max_side) return im;
  const int l = std::max(1, static_cast<int>(std::lround(static_cast<double>(L) * max_side / s)));
  const int oh = H <= W ? max_side : l, ow = H <= W ? l : max_side;
  // per output position: the source range it covers and each source pixel's coverage
  struct Tap {
    int first = 0;
    std::vector<float> w;
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = static_cast<double>(in) / out;
    for (int o = 0; o < out; o++) {
      const double a = o * scale, b = std::min<double>(in, (o + 1) * scale);
      const int j0 = static_cast<int>(std::floor(a)), j1 = std::min(in, static_cast<int>(std::ceil(b)));
      t[o].first = j0;
      for (int j = j0; j < j1; j++) {
        const double cov = std::min<double>(b, j + 1) - std::max<double>(a, j);
        t[o].w.push_back(static_cast<float>(cov / scale));
      }
    }
    return t;
  };
  const std::vector<Tap> tx = taps(W, ow), ty = taps(H, oh);
  std::vector<float> tmp(static_cast<size_t>(H) * ow * C);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < ow; x++)
      for (int c = 0; c < C; c++) {
        float acc = 0;
        const Tap& t = tx[x];
        for (size_t k = 0; k < t.w.size(); k++) acc += t.w[k] * im.at(y, t.first + static_cast<int>(k), c);
        tmp[(static_cast<size_t>(y) * ow + x) * C + c] = acc;
      }
  Image out(oh, ow, C);
  for (int y = 0; y < oh; y++) {
    const Tap& t = ty[y];
    for (int x = 0; x < ow; x++)
      for (int c = 0; c < C; c++) {
        float acc = 0;
        for (size_t k = 0; k < t.w.size(); k++)
          acc += t.w[k] * tmp[(static_cast<size_t>(t.first + static_cast<int>(k)) * ow + x) * C + c];
        const int v = static_cast<int>(acc + 0.5f);
        out.at(y, x, c) = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
  }
  return out;
}

// ---------------------------------------------------------------- writer
namespace {

// Sequential writes to a file descriptor through a buffer, with per-chunk
// CRCs over the pixel bytes.
class PackWriter {
 public:
  PackWriter(int fd, std::string shown, uint32_t chunk) : fd_(fd), shown_(std::move(shown)), chunk_(chunk) {
    buf_.reserve(1 << 20);
  }
  void raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    pos_ += n;
    if (buf_.size() >= (1 << 20)) flush();
  }
  void pixels(const uint8_t* p, size_t n) {
    while (n > 0) {
      const size_t take = std::min<size_t>(n, chunk_ - in_chunk_);
      crc_ = crc32(p, take, crc_);
      in_chunk_ += take;
      if (in_chunk_ == chunk_) end_chunk();
      raw(p, take);
      p += take;
      n -= take;
    }
  }
  void end_pixels() {
    if (in_chunk_ > 0) end_chunk();
  }
  void pad_to(uint64_t align) {
    static const uint8_t zeros[64] = {0};
    const uint64_t pad = (align - pos_ % align) % align;
    raw(zeros, static_cast<size_t>(pad));
  }
  void flush() {
    const uint8_t* p = buf_.data();
    size_t left = buf_.size();
    while (left > 0) {
      const ssize_t w = ::write(fd_, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("cannot write '", shown_, "': ", std::strerror(w == 0 ? ENOSPC : errno));
      p += w;
      left -= static_cast<size_t>(w);
    }
    buf_.clear();
  }
  uint64_t pos() const { return pos_; }
  const std::vector<uint32_t>& crcs() const { return crcs_; }

 private:
  void end_chunk() {
    crcs_.push_back(crc_);
    crc_ = 0;
    in_chunk_ = 0;
  }
  int fd_;
  std::string shown_;
  uint32_t chunk_;
  std::vector<uint8_t> buf_;
  uint64_t pos_ = 0;
  uint32_t crc_ = 0;
  size_t in_chunk_ = 0;
  std::vector<uint32_t> crcs_;
};

void put32(std::vector<uint8_t>& v, uint32_t x) {
  uint8_t b[4];
  wr32(b, x);
  v.insert(v.end(), b, b + 4);
}
void put64(std::vector<uint8_t>& v, uint64_t x) {
  uint8_t b[8];
  wr64(b, x);
  v.insert(v.end(), b, b + 8);
}
void put_string(std::vector<uint8_t>& v, const std::string& s) {
  put32(v, static_cast<uint32_t>(s.size()));
  v.insert(v.end(), s.begin(), s.end());
}
void pad8(std::vector<uint8_t>& v) {
  while (v.size() % 8) v.push_back(0);
}

}  // namespace

PackResult pack_dataset(const Dataset& src, const std::string& out, const PackOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  SIMCLR_CHECK(opt.max_side >= 0, "pack: --max-side must be >= 0, got ", opt.max_side);
  SIMCLR_CHECK(opt.chunk_bytes >= 64 && opt.chunk_bytes <= (1u << 30), "pack: chunk size ", opt.chunk_bytes,
               " out of range [64, 2^30]");
  const int64_t n = src.size();
  SIMCLR_CHECK(n > 0, "pack: the source holds no images");
  const int C = src.channels();
  SIMCLR_CHECK(C == 1 || C == 3, "pack: the source has ", C, " channels (expected 1 or 3)");
  const std::vector<std::string>& classes = src.class_names();
  const bool labelled = !classes.empty();
  check_output_path("--out", out, opt.inputs, opt.force);
  const std::string target = output_target(out);
  const std::string shown = target == out ? out : out + "' (-> '" + target;
  const std::string tmp = target + ".tmp." + std::to_string(getpid()) + "." + std::to_string(std::random_device{}());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  SIMCLR_CHECK(fd >= 0, "cannot write '", shown, "': ", std::strerror(errno));

  // ---- decode + resize on worker threads, written in order here
  const int threads = std::max(1, opt.threads > 0 ? opt.threads : static_cast<int>(std::thread::hardware_concurrency()));
  const int64_t window = std::max<int64_t>(64, 8 * threads);
  struct Slot {
    bool ready = false;
    Sample s;
    bool resized = false;
    std::exception_ptr err;
  };
  std::vector<Slot> slots(static_cast<size_t>(window));
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  int64_t next = 0, written = 0;
  bool stop = false;
  auto worker = [&] {
    while (true) {
      int64_t i;
      {
        std::unique_lock<std::mutex> g(mu);
        cv_work.wait(g, [&] { return stop || next >= n || next < written + window; });
        if (stop || next >= n) return;
        i = next++;
      }
      Slot r;
      try {
        r.s = src.get(i);
        SIMCLR_CHECK(r.s.image.channels == C, "pack: image ", i, " has ", r.s.image.channels, " channels, the source ",
                     C);
        Image small = shrink_to_max_side(r.s.image, opt.max_side);
        r.resized = small.height != r.s.image.height || small.width != r.s.image.width;
        if (r.resized) r.s.image = std::move(small);
      } catch (...) {
        r.err = std::current_exception();
      }
      r.ready = true;
      {
        std::lock_guard<std::mutex> g(mu);
        slots[static_cast<size_t>(i % window)] = std::move(r);
      }
      cv_done.notify_all();
    }
  };
  std::vector<std::thread> pool;
  auto shutdown = [&] {
    {
      std::lock_guard<std::mutex> g(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (std::thread& t : pool) t.join();
    pool.clear();
  };
  PackResult res;
  try {
    PackWriter w(fd, shown, opt.chunk_bytes);
    const uint8_t zero_header[kPackedHeaderBytes] = {0};
    w.raw(zero_header, kPackedHeaderBytes);  // the real header comes last
    for (int t = 0; t < threads; t++) pool.emplace_back(worker);
    std::vector<uint8_t> index;
    index.reserve(static_cast<size_t>(n) * kIndexEntryBytes);
    std::vector<int32_t> labels;
    bool fixed = true;
    int h0 = 0, w0 = 0;
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
      Slot r;
      {
        std::unique_lock<std::mutex> g(mu);
        Slot& s = slots[static_cast<size_t>(i % window)];
        cv_done.wait(g, [&] { return s.ready; });
        r = std::move(s);
        s = Slot{};
        written = i + 1;
      }
      cv_work.notify_all();
      if (r.err) std::rethrow_exception(r.err);
      const Image& im = r.s.image;
      SIMCLR_CHECK(im.height >= 1 && im.width >= 1 && static_cast<uint32_t>(im.height) <= kMaxSidePixels &&
                       static_cast<uint32_t>(im.width) <= kMaxSidePixels,
                   "pack: image ", i, " of ", im.height, "x", im.width, " pixels cannot be packed (each side 1 .. ",
                   kMaxSidePixels, "; use --max-side)");
      if (i == 0) h0 = im.height, w0 = im.width;
      fixed = fixed && im.height == h0 && im.width == w0;
      put64(index, off);
      put32(index, static_cast<uint32_t>(im.height));
      put32(index, static_cast<uint32_t>(im.width));
      off += im.pixels.size();
      w.pixels(im.pixels.data(), im.pixels.size());
      if (labelled) {
        SIMCLR_CHECK(r.s.label >= 0 && r.s.label < static_cast<int64_t>(classes.size()), "pack: image ", i,
                     " has label ", r.s.label, ", out of range for the source's ", classes.size(), " classes");
        labels.push_back(static_cast<int32_t>(r.s.label));
      }
      res.resized += r.resized;
      if (opt.progress) opt.progress(i + 1, n);
    }
    shutdown();
    w.end_pixels();
    PackedHeader h;
    h.count = static_cast<uint64_t>(n);
    h.channels = static_cast<uint32_t>(C);
    h.flags = (labelled ? kPackedLabelled : 0) | (fixed ? kPackedFixedSize : 0);
    h.chunk_bytes = opt.chunk_bytes;
    h.num_classes = static_cast<uint32_t>(classes.size());
    h.max_side = static_cast<uint32_t>(opt.max_side);
    h.pixels_bytes = off;
    w.pad_to(64);
    h.tables_offset = w.pos();
    // tables, built in memory (16 + 4 bytes per image), CRC'd as one span
    std::vector<uint8_t> tables = std::move(index);
    h.index_offset = h.tables_offset;
    if (labelled) {
      h.labels_offset = h.tables_offset + tables.size();
      for (int32_t l : labels) put32(tables, static_cast<uint32_t>(l));
      pad8(tables);
    }
    h.strings_offset = h.tables_offset + tables.size();
    put_string(tables, opt.source_kind.empty() ? "unknown" : opt.source_kind);
    put_string(tables, src.describe());
    for (const std::string& c : classes) put_string(tables, c);
    h.strings_bytes = h.tables_offset + tables.size() - h.strings_offset;
    pad8(tables);
    h.checksums_offset = h.tables_offset + tables.size();
    h.num_chunks = w.crcs().size();
    for (uint32_t c : w.crcs()) put32(tables, c);
    h.tables_crc = crc32(tables.data(), tables.size());
    w.raw(tables.data(), tables.size());
    h.file_bytes = w.pos();
    w.flush();
    uint8_t hb[kPackedHeaderBytes];
    write_header(hb, h);
    SIMCLR_CHECK(::pwrite(fd, hb, kPackedHeaderBytes, 0) == static_cast<ssize_t>(kPackedHeaderBytes),
                 "cannot write '", shown, "': ", std::strerror(errno));
    SIMCLR_CHECK(::fsync(fd) == 0, "cannot write '", shown, "': ", std::strerror(errno));
    res.bytes = h.file_bytes;
  } catch (...) {
    shutdown();
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write '", shown, "': ", std::strerror(e));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write '", shown, "': ", std::strerror(e));
  }
  const std::string dir = fs::path(target).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  res.images = n;
  res.skipped = src.skipped();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

// ---------------------------------------------------------------- test helpers
void packed_reseal(uint8_t* d, size_t size) {
  using namespace packed_field;
  if (size < kPackedHeaderBytes) return;
  const uint64_t t = rd64(d + kTablesOffset);
  if (t <= size) wr32(d + kTablesCrc, crc32(d + t, static_cast<size_t>(size - t)));
  wr32(d + kHeaderCrc, crc32(d, kHeaderCrc));
}
void packed_reseal(std::vector<uint8_t>& file) { packed_reseal(file.data(), file.size()); }

}  // namespace simclr
