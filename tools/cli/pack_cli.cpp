// tools/cli/pack_cli.cpp - see pack_cli.h.
#include "tools/cli/pack_cli.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/packed.h"
#include "engine/check.h"

namespace fs = std::filesystem;

namespace simclr {

namespace {

const char* kPackUsage =
    "usage: simclr pack --from SOURCE --out data.simclr [options]\n"
    "\n"
    "Writes a dataset as one packed file (docs/data.md): raw uint8 pixels, labels,\n"
    "class names and checksums, read by memory map in training (no decoding).\n"
    "\n"
    "  --from SOURCE      an image folder (root/<class>/<image>), a folder of images,\n"
    "                     a CIFAR-10/100 folder of .bin batches, a Fashion-MNIST folder\n"
    "                     of *-ubyte[.gz] files, an IDX images file, or a packed file\n"
    "  --out FILE         the packed file (written to a temporary name, then renamed)\n"
    "  --max-side M       downscale images whose shorter side exceeds M to shorter side\n"
    "                     M, aspect kept (area averaging); 0 keeps sizes   (256)\n"
    "  --threads N        decoding threads                      (all cores)\n"
    "  --channels 1|3     (1 for Fashion-MNIST and IDX, as stored for packed, else 3)\n"
    "  --dataset KIND     the source's kind instead of detecting it: fashion-mnist,\n"
    "                     idx, image-folder, flat-folder, cifar10, cifar100, packed\n"
    "  --split train|test the split of a Fashion-MNIST or CIFAR folder    (train)\n"
    "  --labels FILE      IDX: the labels file (default: the MNIST-named one beside it)\n"
    "  --subset N         only the first N images\n"
    "  --strict           an undecodable image is an error (default: replaced by the\n"
    "                     next one with a warning, exactly as training from the folder)\n"
    "  --force            replace an existing --out\n";

const char* kInfoUsage =
    "usage: simclr info FILE [--verify]\n"
    "\n"
    "What a packed file (simclr pack) holds: image count, sizes, channels, classes,\n"
    "labels, source, and the checksum status. The header and tables checksums are\n"
    "always checked; --verify also checks every pixel chunk (reads the whole file)\n"
    "and exits with status 1 naming the bad chunks.\n";

int64_t parse_int(const std::string& cmd, const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  SIMCLR_CHECK(!v.empty() && end && *end == 0 && x >= lo && x <= hi, cmd, ": ", flag, " expects an integer in [", lo,
               ", ", hi, "], got '", v, "'");
  return static_cast<int64_t>(x);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, u++;
  char s[32];
  std::snprintf(s, sizeof s, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return s;
}

std::string fmt_time(double s) {
  char buf[32];
  const long t = std::lround(s);
  std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

// A progress bar on a terminal, else a line every 5 s (stderr).
std::function<void(int64_t, int64_t)> progress_printer(bool tty) {
  struct State {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last;
  };
  auto st = std::make_shared<State>();
  st->last = st->start;
  return [st, tty](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - st->last).count();
    if (done != total && since < (tty ? 0.1 : 5.0)) return;
    st->last = now;
    const double el = std::chrono::duration<double>(now - st->start).count();
    const double rate = done / std::max(el, 1e-9);
    const double frac = static_cast<double>(done) / total;
    if (tty) {
      const int width = 30, fill = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r\x1b[K[%s%s] %3.0f%% %lld/%lld  %.0f images/s  ETA %s", std::string(fill, '#').c_str(),
                   std::string(width - fill, '.').c_str(), 100 * frac, static_cast<long long>(done),
                   static_cast<long long>(total), rate, fmt_time((total - done) / std::max(rate, 1e-9)).c_str());
      if (done == total) std::fprintf(stderr, "\r\x1b[K");
    } else if (done != total) {
      std::fprintf(stderr, "pack: %lld/%lld images (%.0f%%), %.0f images/s\n", static_cast<long long>(done),
                   static_cast<long long>(total), 100 * frac, rate);
    }
    std::fflush(stderr);
  };
}

bool folder_has(const std::string& dir, bool (*pred)(const fs::directory_entry&)) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (pred(*it)) return true;
  return false;
}

}  // namespace

PackSource open_pack_source(const std::string& from, std::string kind, const std::string& split, int channels,
                            bool strict, const std::string& labels) {
  std::error_code ec;
  SIMCLR_CHECK(!from.empty(), "pack: --from is required (see simclr pack --help)");
  SIMCLR_CHECK(fs::exists(from, ec), "pack: --from '", from, "' does not exist");
  SIMCLR_CHECK(split == "train" || split == "test", "pack: --split must be train or test, got '", split, "'");
  const bool dir = fs::is_directory(from, ec);
  if (kind.empty()) {
    if (!dir) {
      kind = is_packed_file(from) ? "packed" : "idx";
    } else if (folder_has(from, [](const fs::directory_entry& e) {
                 return e.path().filename().string().find("-ubyte") != std::string::npos;
               })) {
      kind = "fashion-mnist";
    } else if (fs::exists(cifar_batch_files(from, "train", true)[0], ec)) {
      kind = "cifar100";
    } else if (fs::exists(cifar_batch_files(from, "train", false)[0], ec)) {
      kind = "cifar10";
    } else if (folder_has(from, [](const fs::directory_entry& e) {
                 std::error_code ec2;
                 const std::string n = e.path().filename().string();
                 return !n.empty() && n[0] != '.' && e.is_directory(ec2);
               })) {
      kind = "image-folder";
    } else {
      kind = "flat-folder";
    }
  }
  PackSource s;
  s.kind = kind;
  if (kind == "packed") {
    PackedOpenOptions po;
    po.channels = channels;  // 0: as stored
    std::unique_ptr<PackedDataset> p = open_packed(from, po);
    s.kind = p->source_kind();
    s.inputs = {from};
    s.ds = std::move(p);
    return s;
  }
  if (channels == 0) channels = (kind == "fashion-mnist" || kind == "idx") ? 1 : 3;
  if (kind == "idx") {
    SIMCLR_CHECK(!dir, "pack: --from '", from, "' is a folder, not an IDX images file");
    std::string lpath = labels;
    if (lpath.empty()) {
      const std::string name = fs::path(from).filename().string();
      const size_t at = name.find("images-idx3-ubyte");
      if (at != std::string::npos) {
        std::string lname = name;
        lname.replace(at, 17, "labels-idx1-ubyte");
        const std::string cand = (fs::path(from).parent_path() / lname).string();
        if (fs::exists(cand, ec)) lpath = cand;
      }
    }
    s.ds = open_idx(from, lpath, channels, {}, "idx");
    s.inputs = {from, lpath};
    return s;
  }
  SIMCLR_CHECK(labels.empty(), "pack: --labels is for IDX sources");
  DataConfig c;
  c.dataset = kind;
  c.path = from;
  c.channels = channels;
  c.strict = strict;
  c.split = split;
  SIMCLR_CHECK(kind == "fashion-mnist" || kind == "image-folder" || kind == "flat-folder" || kind == "cifar10" ||
                   kind == "cifar100",
               "pack: unknown --dataset '", kind,
               "' (fashion-mnist, idx, image-folder, flat-folder, cifar10, cifar100, packed)");
  SIMCLR_CHECK(split == "train" || kind == "fashion-mnist" || kind == "cifar10" || kind == "cifar100", "pack: ", kind,
               " has one split: pack its test folder with another --from");
  s.ds = open_dataset(c, kind == "image-folder" || kind == "flat-folder" ? "train" : split);
  return s;
}

int cmd_pack(int argc, char** argv) {
  std::string from, out, kind, split = "train", labels;
  PackOptions opt;
  int channels = 0;
  int64_t subset_n = 0;
  bool strict = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, "pack: ", a, " needs a value (see simclr pack --help)");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf("%s", kPackUsage);
      return 0;
    } else if (a == "--from") {
      from = value();
    } else if (a == "--out") {
      out = value();
    } else if (a == "--max-side") {
      opt.max_side = static_cast<int>(parse_int("pack", a, value(), 0, 1 << 20));
    } else if (a == "--threads") {
      opt.threads = static_cast<int>(parse_int("pack", a, value(), 1, 1024));
    } else if (a == "--channels") {
      channels = static_cast<int>(parse_int("pack", a, value(), 1, 3));
      SIMCLR_CHECK(channels != 2, "pack: --channels must be 1 or 3, got 2");
    } else if (a == "--dataset") {
      kind = value();
    } else if (a == "--split") {
      split = value();
    } else if (a == "--labels") {
      labels = value();
    } else if (a == "--subset") {
      subset_n = parse_int("pack", a, value(), 1, int64_t{1} << 40);
    } else if (a == "--strict") {
      strict = true;
    } else if (a == "--force") {
      opt.force = true;
    } else {
      fail("pack: unknown argument '", a, "' (see simclr pack --help)");
    }
  }
  SIMCLR_CHECK(!out.empty(), "pack: --out is required (see simclr pack --help)");
  SIMCLR_CHECK(!fs::is_directory(out), "pack: --out '", out, "' is a directory; give a file name");
  PackSource src = open_pack_source(from, kind, split, channels, strict, labels);
  std::shared_ptr<Dataset> ds = src.ds;
  if (subset_n > 0 && subset_n < ds->size()) ds = subset(ds, subset_n);
  opt.source_kind = src.kind;
  opt.inputs = src.inputs;
  opt.progress = progress_printer(isatty(fileno(stderr)));
  std::printf("packing %s\n", ds->describe().c_str());
  std::fflush(stdout);
  const PackResult r = pack_dataset(*ds, out, opt);
  std::printf("packed %lld images into %s: %s in %.1f s (%.0f images/s); %lld resized to shorter side <= %d, "
              "%lld undecodable replaced by the next image\n",
              static_cast<long long>(r.images), out.c_str(), human_bytes(static_cast<double>(r.bytes)).c_str(),
              r.seconds, r.images / std::max(r.seconds, 1e-9), static_cast<long long>(r.resized), opt.max_side,
              static_cast<long long>(r.skipped));
  return 0;
}

int cmd_info(int argc, char** argv) {
  std::string path;
  bool verify = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", kInfoUsage);
      return 0;
    } else if (a == "--verify") {
      verify = true;
    } else if (!a.empty() && a[0] == '-') {
      fail("info: unknown option '", a, "' (see simclr info --help)");
    } else {
      SIMCLR_CHECK(path.empty(), "info: expected one file, got '", path, "' and '", a, "'");
      path = a;
    }
  }
  SIMCLR_CHECK(!path.empty(), "info: expected a packed file (usage: simclr info FILE [--verify])");
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(path, ec), "info: '", path, "' does not exist");
  auto p = open_packed(path);
  const PackedHeader& h = p->header();
  const int64_t n = p->size();
  std::printf("file        %s (%s, %llu bytes)\n", path.c_str(), human_bytes(static_cast<double>(h.file_bytes)).c_str(),
              static_cast<unsigned long long>(h.file_bytes));
  std::printf("format      simclr packed dataset, version %u\n", h.version);
  std::printf("source      %s: %s\n", p->source_kind().c_str(), p->source_description().c_str());
  int hmin = 1 << 30, hmax = 0, wmin = 1 << 30, wmax = 0, smax = 0;
  for (int64_t i = 0; i < n; i++) {
    int hh, ww;
    p->image_size(i, &hh, &ww);
    hmin = std::min(hmin, hh), hmax = std::max(hmax, hh), wmin = std::min(wmin, ww), wmax = std::max(wmax, ww);
    smax = std::max(smax, std::min(hh, ww));
  }
  std::printf("images      %lld, %d channel(s)\n", static_cast<long long>(n), p->stored_channels());
  if (h.flags & kPackedFixedSize)
    std::printf("sizes       all %dx%d\n", hmin, wmin);
  else
    std::printf("sizes       height %d..%d, width %d..%d, shorter side at most %d\n", hmin, hmax, wmin, wmax, smax);
  if (h.max_side > 0) std::printf("max side    %u (shorter sides above it were downscaled when packing)\n", h.max_side);
  else std::printf("max side    0 (sizes kept when packing)\n");
  const std::vector<std::string>& cls = p->class_names();
  if (h.flags & kPackedLabelled) {
    std::vector<int64_t> per(cls.size(), 0);
    for (int64_t i = 0; i < n; i++) per[static_cast<size_t>(p->label(i))]++;
    const auto [mn, mx] = std::minmax_element(per.begin(), per.end());
    std::printf("labels      yes, %zu classes, %lld..%lld images per class\n", cls.size(), static_cast<long long>(*mn),
                static_cast<long long>(*mx));
    std::string names;
    for (size_t k = 0; k < cls.size() && k < 20; k++) names += (k ? ", " : "") + cls[k];
    if (cls.size() > 20) names += ", ... (" + std::to_string(cls.size() - 20) + " more)";
    std::printf("classes     %s\n", names.c_str());
  } else {
    std::printf("labels      none\n");
  }
  std::printf("pixels      %llu bytes in %llu chunks of %u bytes\n", static_cast<unsigned long long>(h.pixels_bytes),
              static_cast<unsigned long long>(h.num_chunks), h.chunk_bytes);
  if (!verify) {
    std::printf("checksums   header and tables OK; pixel chunks not checked (simclr info --verify checks them)\n");
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(fileno(stderr));
  std::vector<PackedChunkError> bad = p->verify([tty](uint64_t d, uint64_t t) {
    if (tty && (d % 16 == 0 || d == t))
      std::fprintf(stderr, d == t ? "\r\x1b[K" : "\r\x1b[Kverifying chunk %llu/%llu", static_cast<unsigned long long>(d),
                   static_cast<unsigned long long>(t));
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!bad.empty()) {
    std::printf("checksums   header and tables OK; %zu of %llu pixel chunks BAD\n", bad.size(),
                static_cast<unsigned long long>(h.num_chunks));
    std::fflush(stdout);
    throw Error(describe_chunk_errors(path, bad, h.num_chunks));
  }
  std::printf("checksums   header, tables and all %llu pixel chunks OK (verified in %.2f s)\n",
              static_cast<unsigned long long>(h.num_chunks), s);
  return 0;
}

}  // namespace simclr
