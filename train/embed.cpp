// train/embed.cpp - see embed.h.
#include "train/embed.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "engine/device.h"
#include "train/npy.h"
#include "train/trainer.h"

namespace simclr {

namespace fs = std::filesystem;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A packed .npy of u8 images [N, H, W] or [N, H, W, C].
std::shared_ptr<Dataset> open_packed_npy(const std::string& path, int channels) {
  Tensor t = read_npy(path);
  SIMCLR_CHECK(t.dtype() == DType::u8, "'", path, "': packed images must be uint8, got ", dtype_name(t.dtype()));
  SIMCLR_CHECK(t.ndim() == 3 || (t.ndim() == 4 && (t.size(3) == 1 || t.size(3) == 3)), "'", path,
               "': packed images must have shape [N, H, W] or [N, H, W, C] with C = 1 or 3, got ", t.shape().str());
  SIMCLR_CHECK(t.size(0) > 0 && t.size(1) > 0 && t.size(2) > 0, "'", path, "' holds no images (shape ",
               t.shape().str(), ")");
  const int N = static_cast<int>(t.size(0)), H = static_cast<int>(t.size(1)), W = static_cast<int>(t.size(2));
  const int C = t.ndim() == 4 ? static_cast<int>(t.size(3)) : 1;
  const uint8_t* p = t.data<uint8_t>();
  const size_t per = static_cast<size_t>(H) * W * C;
  std::vector<Image> images;
  images.reserve(N);
  for (int i = 0; i < N; i++) {
    Image im(H, W, C);
    std::copy(p + i * per, p + (i + 1) * per, im.pixels.begin());
    images.push_back(C == channels ? std::move(im) : convert_channels(im, channels));
  }
  return memory_dataset(std::move(images), std::vector<int64_t>(N, -1), {}, "packed " + path);
}

void progress_bar(int64_t done, int64_t total, double t0) {
  const int width = 30;
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(frac * width);
  const double el = now_s() - t0, rate = static_cast<double>(done) / std::max(el, 1e-9);
  std::fprintf(stderr, "\r\x1b[K[");
  for (int i = 0; i < width; i++) std::fputc(i < fill ? '=' : (i == fill ? '>' : ' '), stderr);
  std::fprintf(stderr, "] %lld/%lld images %3.0f%%  %.0f img/s  eta %.0f s", static_cast<long long>(done),
               static_cast<long long>(total), 100 * frac, rate,
               rate > 0 ? static_cast<double>(total - done) / rate : 0.0);
  if (done == total) std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
}
}  // namespace

std::shared_ptr<Dataset> open_embed_data(const std::string& path, int channels, bool strict, std::string* labels_from) {
  if (labels_from) labels_from->clear();
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(path, ec), "--data '", path, "' does not exist");
  if (!fs::is_directory(path, ec)) {
    if (fs::path(path).extension() == ".npy") return open_packed_npy(path, channels);
    // MNIST naming: <x>-images-idx3-ubyte[.gz] -> <x>-labels-idx1-ubyte[.gz].
    const std::string name = fs::path(path).filename().string();
    const size_t at = name.find("images-idx3-ubyte");
    if (at != std::string::npos) {
      std::string lname = name;
      lname.replace(at, 17, "labels-idx1-ubyte");
      const std::string lpath = (fs::path(path).parent_path() / lname).string();
      if (fs::exists(lpath, ec)) {
        if (labels_from) *labels_from = lpath;
        return open_idx(path, lpath, channels, {}, "idx");
      }
    }
  }
  return open_dataset_path(path, channels, strict);
}

FeatureSet embed_dataset(LoadedEncoder& enc, std::shared_ptr<const Dataset> ds, int64_t batch,
                         const ProgressFn& progress) {
  SIMCLR_CHECK(batch >= 1, "embed: batch must be at least 1, got ", batch);
  SIMCLR_CHECK(ds->size() > 0, "embed: the dataset holds no images");
  return encoder_features(*enc.encoder, std::move(ds), enc.data, batch, progress);
}

void embed(const EmbedOptions& opt) {
  const std::string &weights = opt.weights, &data = opt.data, &out = opt.out, &labels_out = opt.labels_out;
  SIMCLR_CHECK(!weights.empty() && !data.empty() && !out.empty(),
               "embed: the weights, data and output paths must all be given");
  SIMCLR_CHECK(labels_out.empty() || fs::absolute(labels_out) != fs::absolute(out),
               "embed: --out and --labels-out name the same file");
  std::error_code ec;
  for (const std::string& o : {out, labels_out}) {
    if (o.empty()) continue;
    SIMCLR_CHECK(!fs::equivalent(o, weights, ec) && !fs::equivalent(o, data, ec), "embed: output '", o,
                 "' would overwrite an input");
    const fs::path dir = fs::path(o).parent_path();
    SIMCLR_CHECK(dir.empty() || fs::is_directory(dir, ec), "embed: cannot write '", o, "': folder '", dir.string(),
                 "' does not exist");
    SIMCLR_CHECK(!fs::is_directory(o, ec), "embed: cannot write '", o, "': it is a folder");
  }

  const int nthreads = set_compute_threads(opt.threads);
  std::unique_ptr<LoadedEncoder> enc = load_encoder(weights);
  std::string labels_from;
  std::shared_ptr<Dataset> ds = open_embed_data(data, enc->data.channels, opt.strict, &labels_from);
  for (const std::string& o : {out, labels_out})  // the labels file found beside the images is an input too
    SIMCLR_CHECK(o.empty() || labels_from.empty() || !fs::equivalent(o, labels_from, ec), "embed: output '", o,
                 "' is the labels file it reads ('", labels_from, "'): refusing to overwrite an input");
  if (cuda_available())
    std::fprintf(stderr, "note: a GPU is present (%s) but the CUDA backend does not cover the ResNet forward yet: "
                         "embedding runs on the CPU for now\n", cuda_device_name(0).c_str());
  std::printf("simclr embed: %s width %g (%s stem, %lld features) from %s %s; %s%s%s; input %dx%dx%d, %d CPU threads\n",
              enc->encoder->arch_name().c_str(), enc->model.width, enc->model.stem.c_str(),
              static_cast<long long>(enc->encoder->feature_dim()), enc->kind.c_str(), weights.c_str(),
              ds->describe().c_str(), labels_from.empty() ? "" : ", labels from ", labels_from.c_str(),
              enc->data.image_size, enc->data.image_size, enc->data.channels, nthreads);
  std::fflush(stdout);

  const double t0 = now_s();
  ProgressFn progress;
  if (isatty(fileno(stderr))) progress = [t0](int64_t d, int64_t t) { progress_bar(d, t, t0); };
  FeatureSet f = embed_dataset(*enc, ds, opt.batch, progress);
  const double secs = now_s() - t0;
  write_npy(out, f.x);
  if (!labels_out.empty()) write_npy(labels_out, f.y);
  if (ds->skipped() > 0)
    std::fprintf(stderr, "warning: %lld undecodable image(s) were replaced by the next image (use --strict to stop)\n",
                 static_cast<long long>(ds->skipped()));
  std::printf("wrote %s: float32 [%lld, %lld]%s%s (%.1f s, %.0f images/s, CPU)\n", out.c_str(),
              static_cast<long long>(f.n()), static_cast<long long>(f.d()), labels_out.empty() ? "" : "; labels ",
              labels_out.c_str(), secs, static_cast<double>(f.n()) / std::max(secs, 1e-9));
}

}  // namespace simclr
