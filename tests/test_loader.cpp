// tests/test_loader.cpp - the threaded loader: batch layout (the NT-Xent
// contract), determinism across worker counts, shuffling, drop_last, resume,
// evaluation order, error propagation and shutdown.
#include <cstring>
#include <set>

#include "data/loader.h"
#include "helpers.h"

using namespace simclr;

namespace {

// Images of varying size (like a folder), label = index % 3; throws for
// indices in `bad`.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(int64_t n, int channels, std::set<int64_t> bad = {}, bool std_error = false)
      : n_(n), c_(channels), bad_(std::move(bad)), std_error_(std_error) {}
  int64_t size() const override { return n_; }
  int channels() const override { return c_; }
  int height() const override { return 0; }
  int width() const override { return 0; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "synthetic"; }
  Sample get(int64_t i) const override {
    if (bad_.count(i)) {
      if (std_error_) throw std::runtime_error("synthetic failure at " + std::to_string(i));
      fail("synthetic image ", i, " is broken");
    }
    Sample s;
    int h = 12 + static_cast<int>(i % 5), w = 10 + static_cast<int>(i % 7);
    s.image = Image(h, w, c_);
    for (size_t k = 0; k < s.image.pixels.size(); k++) s.image.pixels[k] = static_cast<uint8_t>((k * 13 + i * 29) % 256);
    s.label = i % 3;
    return s;
  }

 private:
  int64_t n_;
  int c_;
  std::set<int64_t> bad_;
  bool std_error_;
  std::vector<std::string> names_ = {"a", "b", "c"};
};

DataConfig small_config(int channels) {
  DataConfig c;
  c.dataset = "flat-folder";
  c.channels = channels;
  c.image_size = 8;
  c.mean.assign(static_cast<size_t>(channels), 0.4f);
  c.std.assign(static_cast<size_t>(channels), 0.25f);
  c.augment.blur_p = 0.5;  // exercise every step
  c.augment.solarize_p = 0.2;
  return c;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

std::vector<Batch> take(Loader& l, int k) {
  std::vector<Batch> v;
  for (int i = 0; i < k; i++) v.push_back(l.next());
  return v;
}

}  // namespace

TEST_CASE("loader: training batch layout is view 1 of images 0..N-1 then view 2 of the same images, normalised", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(20, 3);
  DataConfig cfg = small_config(3);
  LoaderOptions o = train_loader_options(cfg, 6, 77);
  o.workers = 2;
  Loader l(ds, cfg, o);
  CHECK(l.batches_per_epoch() == 3);
  Batch b = l.next();
  const int N = 6, S = 8, C = 3;
  REQUIRE(b.views.shape() == Shape({2 * N, S, S, C}));
  REQUIRE(b.labels.shape() == Shape({N}));
  CHECK(b.labels.dtype() == DType::i64);
  CHECK((b.epoch == 0 && b.index == 0 && b.size() == N));
  const float* v = b.views.data<float>();
  std::vector<float> want(S * S * C), tmp(want.size());
  for (int p = 0; p < N; p++) {
    int64_t idx = b.indices[p];
    Sample s = ds->get(idx);
    CHECK(b.labels.data<int64_t>()[p] == idx % 3);
    for (int view = 0; view < 2; view++) {
      ViewParams vp = sample_view(cfg.augment, 77, 0, idx, view, s.image.height, s.image.width, S, S);
      apply_view(want.data(), tmp.data(), s.image.pixels.data(), s.image.height, s.image.width, C, S, S, vp,
                 cfg.mean.data(), cfg.std.data());
      const float* row = v + static_cast<size_t>(view * N + p) * S * S * C;
      REQUIRE(std::memcmp(row, want.data(), want.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("loader: an un-augmented view is the resized crop, normalised as (x - mean) / std", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(4, 1);
  DataConfig cfg = small_config(1);
  AugmentConfig& a = cfg.augment;
  a.crop_scale_min = a.crop_scale_max = 1.0;
  a.crop_ratio_min = a.crop_ratio_max = 1.0;
  a.flip_p = a.jitter_p = a.gray_p = a.blur_p = a.solarize_p = 0.0;
  cfg.image_size = 12;
  LoaderOptions o = train_loader_options(cfg, 4, 1);
  o.shuffle = false;
  o.workers = 0;
  Loader l(ds, cfg, o);
  Batch b = l.next();
  // Image 0 is 12 x 10 (h x w). With scale 1 and ratio 1 no try fits
  // (w = round(sqrt(120)) = 11 > 10), so the fallback applies: W/H < 1 ->
  // w = 10, h = round(10 / 1) = 10, centred at y = 1: the eval_view box.
  Sample s = ds->get(0);
  ViewParams vp = eval_view(12, 10, 12, 12);
  CHECK((vp.crop_w == 10 && vp.crop_h == 10 && vp.crop_y == 1 && vp.crop_x == 0));
  std::vector<float> want(144), tmp(144);
  crop_resize_flip(want.data(), s.image.pixels.data(), 12, 10, 1, 12, 12, vp);
  const float* row = b.views.data<float>();
  for (int i = 0; i < 144; i++) REQUIRE(std::abs(row[i] - (want[i] - 0.4f) / 0.25f) < 1e-6);
  const float* row2 = row + 4 * 144;  // view 2 of image 0: the same (nothing random is left)
  for (int i = 0; i < 144; i++) REQUIRE(row2[i] == row[i]);
}

TEST_CASE("loader: identical batches for 0, 1, 2 and 4 workers", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(50, 3);
  DataConfig cfg = small_config(3);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 2, 4}) {
    LoaderOptions o = train_loader_options(cfg, 8, 2024);
    o.workers = workers;
    o.prefetch = 3;
    Loader l(ds, cfg, o);
    CHECK(l.batches_per_epoch() == 6);  // 50 / 8, drop_last
    runs.push_back(take(l, 14));         // crosses two epoch boundaries
    LoaderStats st = l.stats();
    CHECK(st.batches == 14);
    CHECK(st.views == 14 * 16);
  }
  for (size_t r = 1; r < runs.size(); r++)
    for (size_t i = 0; i < runs[0].size(); i++) {
      INFO("run " << r << " batch " << i);
      REQUIRE(runs[r][i].indices == runs[0][i].indices);
      REQUIRE(same_tensor(runs[r][i].views, runs[0][i].views));
      REQUIRE(same_tensor(runs[r][i].labels, runs[0][i].labels));
      REQUIRE((runs[r][i].epoch == runs[0][i].epoch && runs[r][i].index == runs[0][i].index));
    }
  // epochs: each a permutation without repeats; epochs differ; batch 6 starts epoch 1
  const std::vector<Batch>& b = runs[0];
  CHECK((b[6].epoch == 1 && b[6].index == 0 && b[13].epoch == 2 && b[13].index == 1));
  std::set<int64_t> seen;
  for (int i = 0; i < 6; i++) seen.insert(b[i].indices.begin(), b[i].indices.end());
  CHECK(seen.size() == 48);
  CHECK(b[0].indices != b[6].indices);
  // the same image in two epochs gets different views
  CHECK_FALSE(same_tensor(b[0].views, b[6].views));
}

TEST_CASE("loader: shuffle follows the seed, drop_last off keeps the short batch", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(50, 1);
  DataConfig cfg = small_config(1);
  LoaderOptions o = train_loader_options(cfg, 8, 5);
  o.drop_last = false;
  o.workers = 2;
  Loader l(ds, cfg, o);
  CHECK(l.batches_per_epoch() == 7);
  std::vector<Batch> e0 = take(l, 7);
  CHECK(e0[6].size() == 2);
  CHECK(e0[6].views.shape() == Shape({4, 8, 8, 1}));
  std::vector<int64_t> all;
  for (const Batch& b : e0) all.insert(all.end(), b.indices.begin(), b.indices.end());
  CHECK(all == l.epoch_order(0));
  std::vector<int64_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; i++) REQUIRE(sorted[i] == i);
  CHECK(all != sorted);  // shuffled
  LoaderOptions o2 = o;
  o2.seed = 6;
  Loader l2(ds, cfg, o2);
  CHECK(l2.epoch_order(0) != l.epoch_order(0));
  CHECK(l2.epoch_order(1) != l2.epoch_order(0));
  o2.shuffle = false;
  Loader l3(ds, cfg, o2);
  CHECK(l3.epoch_order(3) == sorted);
}

TEST_CASE("loader: seek resumes exactly where an uninterrupted run is", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(30, 3);
  DataConfig cfg = small_config(3);
  LoaderOptions o = train_loader_options(cfg, 7, 11);  // 4 batches per epoch
  Loader a(ds, cfg, o);
  std::vector<Batch> full = take(a, 9);
  CHECK((a.position().epoch == 2 && a.position().batch == 1));
  Loader b(ds, cfg, o);
  b.next();  // prefetched work is dropped by seek
  b.seek({1, 2});
  CHECK((b.position().epoch == 1 && b.position().batch == 2));
  for (int i = 6; i < 9; i++) {
    Batch x = b.next();
    REQUIRE(x.indices == full[i].indices);
    REQUIRE(same_tensor(x.views, full[i].views));
  }
  CHECK_THROWS_WITH(b.seek({0, 4}), Catch::Contains("cannot seek to epoch 0 batch 4"));
}

TEST_CASE("loader: evaluation is one pass in dataset order, one un-augmented view", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(11, 3);
  DataConfig cfg = small_config(3);
  LoaderOptions o = eval_loader_options(cfg, 4);
  Loader l(ds, cfg, o);
  CHECK(l.batches_per_epoch() == 3);
  std::vector<float> want(8 * 8 * 3), tmp(want.size());
  int64_t next_index = 0;
  while (!l.done()) {
    Batch b = l.next();
    REQUIRE(b.views.size(0) == b.size());
    for (int64_t p = 0; p < b.size(); p++) {
      REQUIRE(b.indices[p] == next_index);
      Sample s = ds->get(next_index);
      apply_view(want.data(), tmp.data(), s.image.pixels.data(), s.image.height, s.image.width, 3, 8, 8,
                 eval_view(s.image.height, s.image.width, 8, 8), cfg.mean.data(), cfg.std.data());
      REQUIRE(std::memcmp(b.views.data<float>() + p * want.size(), want.data(), want.size() * 4) == 0);
      next_index++;
    }
  }
  CHECK(next_index == 11);
  CHECK_THROWS_WITH(l.next(), Catch::Contains("no more batches"));
}

TEST_CASE("loader: worker exceptions reach the consumer as simclr::Error, shutdown is clean", "[data][loader]") {
  DataConfig cfg = small_config(3);
  for (bool std_error : {false, true}) {
    auto ds = std::make_shared<SyntheticDataset>(40, 3, std::set<int64_t>{17}, std_error);
    LoaderOptions o = train_loader_options(cfg, 8, 3);
    o.shuffle = false;  // image 17 lands in batch 2
    o.workers = 3;
    Loader l(ds, cfg, o);
    l.next();
    l.next();
    CHECK_THROWS_AS(l.next(), simclr::Error);
    Loader l2(ds, cfg, o);
    l2.next();
    l2.next();
    CHECK_THROWS_WITH(l2.next(), Catch::Contains("data loader: ") && Catch::Contains("17"));
    CHECK(l2.next().index == 3);  // the stream goes on after a failed batch
  }
  {
    // destroyed with workers blocked on a full prefetch window
    auto ds = std::make_shared<SyntheticDataset>(400, 3);
    LoaderOptions o = train_loader_options(cfg, 16, 3);
    o.workers = 4;
    o.prefetch = 8;
    Loader l(ds, cfg, o);
    l.next();
  }
  auto tiny = std::make_shared<SyntheticDataset>(5, 3);
  CHECK_THROWS_WITH(Loader(tiny, cfg, train_loader_options(cfg, 8, 0)),
                    Catch::Contains("5 images, fewer than one batch of 8"));
  CHECK_THROWS_WITH(Loader(tiny, small_config(1), train_loader_options(cfg, 2, 0)),
                    Catch::Contains("dataset has 3 channel(s), config asks for 1"));
}

TEST_CASE("loader: bf16 / f16 views are the f32 views rounded", "[data][loader]") {
  auto ds = std::make_shared<SyntheticDataset>(12, 3);
  DataConfig cfg = small_config(3);
  LoaderOptions o = train_loader_options(cfg, 4, 8);
  o.workers = 1;
  Loader l32(ds, cfg, o);
  Batch b32 = l32.next();
  for (DType dt : {DType::bf16, DType::f16}) {
    o.dtype = dt;
    Loader l16(ds, cfg, o);
    Batch b16 = l16.next();
    CHECK(b16.views.dtype() == dt);
    CHECK(same_tensor(b16.views, b32.views.to(dt)));
  }
  o.dtype = DType::i32;
  CHECK_THROWS_WITH(Loader(ds, cfg, o), Catch::Contains("views can be f32, bf16 or f16, not i32"));
}
