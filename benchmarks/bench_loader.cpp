// benchmarks/bench_loader.cpp - throughput of the input pipeline (views/s).
//
// For each setting: the loader with 0 workers (batches built on the calling
// thread: the single-thread baseline) and with 1, 2, 4 worker threads, a
// consumer that only takes the batches; printed as views/s and the ratio to the
// baseline of the same setting in the same run. Settings:
//   fashion-mnist   the installed dataset, 28x28x1, default small-image recipe
//                   (crop, flip, brightness/contrast, no blur)
//   fmnist+blur     the same with blur p = 0.5 (k = 3)
//   cifar-like      synthetic 32x32x3, jitter strength 0.5, no blur
//   imagenet-like   synthetic 256x256x3 -> 224, the paper's full recipe
//
// usage: bench_loader [--batches N] [--batch B] [--max-workers W]
//
// --compare SOURCE PACKED [--image-size S] [--light]: a source (anything
// `simclr pack --from` reads: an image folder of JPEGs, the Fashion-MNIST
// folder, ...) against its packed copy (simclr pack): open time, get() of
// every image on one thread (images/s, MB/s), then loader views/s for 0, 1,
// 2 workers with the source's default recipe (--light: crop + flip only, so
// the input side dominates) at its default image size (or S).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>

#include "data/loader.h"
#include "data/packed.h"
#include "tools/cli/pack_cli.h"

using namespace simclr;

namespace {

std::shared_ptr<Dataset> synthetic(int n, int side, int c) {
  std::vector<Image> ims;
  for (int i = 0; i < n; i++) {
    Image im(side, side, c);
    for (size_t k = 0; k < im.pixels.size(); k++) im.pixels[k] = static_cast<uint8_t>((k * 131 + i * 17) % 251);
    ims.push_back(std::move(im));
  }
  return memory_dataset(std::move(ims), std::vector<int64_t>(static_cast<size_t>(n), 0), {"x"}, "synthetic");
}

// Views per second from construction (workers start) to the last batch taken.
double run(std::shared_ptr<Dataset> ds, const DataConfig& cfg, int64_t batch, int workers, int batches) {
  LoaderOptions o = train_loader_options(cfg, batch, 1);
  o.workers = workers;
  o.prefetch = std::max(2, 2 * workers);
  auto t0 = std::chrono::steady_clock::now();
  Loader l(ds, cfg, o);
  int64_t views = 0;
  for (int i = 0; i < batches; i++) views += l.next().views.size(0);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return views / s;
}

// Microseconds per view of each step on one thread (S x S x C output).
void step_costs(int S, int C, int reps) {
  std::vector<uint8_t> src(static_cast<size_t>(S + 32) * (S + 32) * C);
  for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<uint8_t>((i * 131) % 251);
  std::vector<float> img(static_cast<size_t>(S) * S * C), tmp(img.size());
  ViewParams p;
  p.crop_x = 5, p.crop_y = 7, p.crop_w = S + 20, p.crop_h = S + 10, p.flip = 1;
  int npix = S * S;
  float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.25f, 0.25f, 0.25f};
  auto time = [&](const char* name, auto&& f) {
    crop_resize_flip(img.data(), src.data(), S + 32, S + 32, C, S, S, p);
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) f();
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("  %-22s %9.2f us\n", name, us);
  };
  int k = blur_kernel_size(S, 0.1);
  std::printf("step costs at %dx%dx%d (blur k = %d), one thread:\n", S, S, C, k);
  time("crop+resize+flip", [&] { crop_resize_flip(img.data(), src.data(), S + 32, S + 32, C, S, S, p); });
  time("brightness", [&] { adjust_brightness(img.data(), npix, C, 1.01f); });
  time("contrast", [&] { adjust_contrast(img.data(), npix, C, 0.99f); });
  time("saturation", [&] { adjust_saturation(img.data(), npix, C, 1.01f); });
  time("hue", [&] { adjust_hue(img.data(), npix, C, 0.01f); });
  time("grayscale", [&] { to_grayscale(img.data(), npix, C); });
  time("blur", [&] { gaussian_blur(img.data(), tmp.data(), S, S, C, k, 1.0f); });
  time("normalize", [&] { normalize(img.data(), npix, C, mean, stdv); });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// bench_loader --compare SOURCE PACKED
int compare(const std::string& src_path, const std::string& packed_path, int image_size, bool light, int batches,
            int64_t batch, int max_workers) {
  std::printf("bench_loader --compare: %s vs %s, hardware threads %u\n", src_path.c_str(), packed_path.c_str(),
              std::thread::hardware_concurrency());
  auto t0 = std::chrono::steady_clock::now();
  PackSource src = open_pack_source(src_path, "", "train", 0, false, "");
  const double open_src = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  std::shared_ptr<Dataset> packed = open_packed(packed_path, PackedOpenOptions{src.ds->channels(), false});
  const double open_packed_s = seconds_since(t0);
  const std::string kind = src.kind == "fashion-mnist" || src.kind == "idx" || src.kind == "cifar10" ||
                                   src.kind == "cifar100"
                               ? src.kind
                               : "image-folder";
  json j = {{"dataset", kind}, {"channels", src.ds->channels()}};
  if (image_size > 0) j["image_size"] = image_size;
  if (light) j["augment"] = {{"jitter_p", 0.0}, {"gray_p", 0.0}, {"blur_p", 0.0}};
  ConfigObject o(j, "data");
  DataConfig cfg = parse_data_config(o);
  std::printf("recipe: %s defaults%s, image size %d\n", kind.c_str(), light ? " with jitter, grey and blur off" : "",
              cfg.image_size);
  std::printf("%-8s %9s %12s %10s   %s\n", "dataset", "open s", "get img/s", "get MB/s", "loader views/s by workers");
  for (auto [name, ds, open_s] : {std::tuple{"source", src.ds, open_src}, std::tuple{"packed", packed, open_packed_s}}) {
    t0 = std::chrono::steady_clock::now();
    double bytes = 0;
    for (int64_t i = 0; i < ds->size(); i++) bytes += static_cast<double>(ds->get(i).image.pixels.size());
    const double s = seconds_since(t0);
    std::printf("%-8s %9.3f %12.0f %10.1f  ", name, open_s, ds->size() / s, bytes / s / 1e6);
    const int64_t b = std::min<int64_t>(batch, ds->size());
    for (int w = 0; w <= max_workers; w = (w == 0 ? 1 : 2 * w)) {
      std::printf(" %d: %.0f", w, run(ds, cfg, b, w, batches));
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int batches = 20, max_workers = 4, image_size = 0;
  int64_t batch = 256;
  bool light = false;
  std::string cmp_src, cmp_packed;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--compare" && i + 2 < argc) cmp_src = argv[++i], cmp_packed = argv[++i];
    else if (a == "--image-size" && i + 1 < argc) image_size = std::atoi(argv[++i]);
    else if (a == "--light") light = true;
    else if (a == "--batches" && i + 1 < argc) batches = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc) batch = std::atoll(argv[++i]);
    else if (a == "--max-workers" && i + 1 < argc) max_workers = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_loader [--batches N (20)] [--batch B (256)] [--max-workers W (4)]\n"
                           "       bench_loader --compare SOURCE PACKED [--image-size S] [--light] [--batches N] ...\n");
      return 1;  // every tool and benchmark: 1 for any error (docs/checkpoint.md, "Exit status")
    }
  }
  try {
    if (!cmp_src.empty()) return compare(cmp_src, cmp_packed, image_size, light, batches, batch, max_workers);
    std::printf("bench_loader: %d batches of %lld images (2 views each) per run, hardware threads %u\n", batches,
                static_cast<long long>(batch), std::thread::hardware_concurrency());
    std::printf("%-15s %8s %14s %10s\n", "setting", "workers", "views/s", "vs 0");
    struct Setting {
      std::string name;
      std::shared_ptr<Dataset> ds;
      DataConfig cfg;
      int batches;
    };
    std::vector<Setting> settings;
    {
      DataConfig c;  // fashion-mnist defaults
      std::error_code ec;
      if (std::filesystem::exists(c.path, ec)) {
        auto ds = open_dataset(c, "train");
        settings.push_back({"fashion-mnist", ds, c, batches});
        DataConfig b = c;
        b.augment.blur_p = 0.5;
        b.augment.blur_kernel_frac = 0.1;
        settings.push_back({"fmnist+blur", ds, b, batches});
      } else {
        std::printf("(fashion-mnist not installed at %s: skipped)\n", c.path.c_str());
      }
    }
    {
      json j = {{"dataset", "cifar10"}};
      ConfigObject o(j, "data");
      DataConfig c = parse_data_config(o);
      settings.push_back({"cifar-like", synthetic(2048, 32, 3), c, batches});
    }
    {
      json j = {{"dataset", "image-folder"}};
      ConfigObject o(j, "data");
      DataConfig c = parse_data_config(o);
      settings.push_back({"imagenet-like", synthetic(64, 256, 3), c, std::max(2, batches / 5)});
    }
    for (Setting& s : settings) {
      int64_t b = s.name == "imagenet-like" ? std::min<int64_t>(batch, 32) : batch;
      double base = 0;
      for (int w = 0; w <= max_workers; w = (w == 0 ? 1 : 2 * w)) {
        double vps = run(s.ds, s.cfg, b, w, s.batches);
        if (w == 0) base = vps;
        std::printf("%-15s %8d %14.0f %9.2fx\n", s.name.c_str(), w, vps, vps / base);
        std::fflush(stdout);
      }
    }
    step_costs(28, 1, 2000);
    step_costs(32, 3, 2000);
    step_costs(224, 3, 20);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
