// data/loader.cpp - worker threads building training / evaluation batches
// (see loader.h for the contract).
#include "data/loader.h"

#include "engine/async.h"

#include <algorithm>
#include <cstring>

#include "data/rng.h"
#include "engine/check.h"

namespace simclr {

LoaderOptions train_loader_options(const DataConfig& cfg, int64_t batch_size, uint64_t seed) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.seed = seed;
  o.train = true;
  o.shuffle = true;
  o.drop_last = cfg.drop_last;
  o.workers = cfg.workers;
  o.prefetch = cfg.prefetch;
  return o;
}

LoaderOptions eval_loader_options(const DataConfig& cfg, int64_t batch_size) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.train = false;
  o.shuffle = false;
  o.drop_last = false;
  o.workers = cfg.workers;
  o.prefetch = cfg.prefetch;
  o.max_epochs = 1;
  return o;
}

Loader::Loader(std::shared_ptr<const Dataset> ds, const DataConfig& cfg, const LoaderOptions& opt)
    : ds_(std::move(ds)), cfg_(cfg), opt_(opt) {
  SIMCLR_CHECK(ds_ != nullptr, "loader: no dataset");
  SIMCLR_CHECK(opt_.batch_size >= 1, "loader: batch size must be >= 1, got ", opt_.batch_size);
  SIMCLR_CHECK(opt_.workers >= 0 && opt_.prefetch >= 1, "loader: workers >= 0 and prefetch >= 1 required");
  SIMCLR_CHECK(ds_->channels() == cfg_.channels, "loader: dataset has ", ds_->channels(),
               " channel(s), config asks for ", cfg_.channels);
  SIMCLR_CHECK(static_cast<int>(cfg_.mean.size()) == cfg_.channels && static_cast<int>(cfg_.std.size()) == cfg_.channels,
               "loader: mean/std must have one value per channel");
  SIMCLR_CHECK(opt_.shard_count >= 1 && opt_.shard_rank >= 0 && opt_.shard_rank < opt_.shard_count,
               "loader: shard ", opt_.shard_rank, " of ", opt_.shard_count, " does not exist");
  if (opt_.shard_count > 1) {
    SIMCLR_CHECK(opt_.batch_size % opt_.shard_count == 0, "loader: the global batch of ", opt_.batch_size,
                 " images does not split evenly over ", opt_.shard_count, " ranks: make train.batch a multiple of ",
                 opt_.shard_count);
    SIMCLR_CHECK(opt_.drop_last, "loader: a batch split over ", opt_.shard_count,
                 " ranks needs drop_last (a final partial batch would not split evenly)");
  }
  int64_t n = ds_->size();
  batches_per_epoch_ = opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
  SIMCLR_CHECK(batches_per_epoch_ >= 1, "loader: the dataset has ", n, " images, fewer than one batch of ",
               opt_.batch_size, " (drop_last is on): lower the batch size or turn drop_last off");
  SIMCLR_CHECK(opt_.dtype == DType::f32 || opt_.dtype == DType::bf16 || opt_.dtype == DType::f16,
               "loader: views can be f32, bf16 or f16, not ", dtype_name(opt_.dtype));
  out_size_ = cfg_.image_size;
  start();
}

Loader::~Loader() { stop(); }

std::shared_ptr<const std::vector<int64_t>> Loader::order_for(int64_t epoch) const {
  std::lock_guard<std::mutex> g(order_mu_);
  auto it = orders_.find(epoch);
  if (it != orders_.end()) return it->second;
  auto v = std::make_shared<std::vector<int64_t>>(epoch_order(epoch));
  orders_[epoch] = v;
  // keep a few recent epochs (workers may straddle an epoch boundary)
  while (orders_.size() > 4) orders_.erase(orders_.begin());
  return v;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  int64_t n = ds_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) order[i] = i;
  if (opt_.shuffle) {
    CounterRng rng(opt_.seed, kStreamShuffle, 0, static_cast<uint32_t>(epoch));
    for (int64_t i = n - 1; i > 0; i--) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

Batch Loader::build(int64_t epoch, int64_t b) const {
  SIMCLR_ASSERT(b >= 0 && b < batches_per_epoch_ && epoch >= 0);
  const int64_t n = ds_->size(), bs = opt_.batch_size;
  // the global batch's positions [gbegin, gend), then this shard's share of them
  const int64_t gbegin = b * bs, gend = std::min(n, gbegin + bs), GN = gend - gbegin;
  const int64_t R = opt_.shard_count, r = opt_.shard_rank;
  const int64_t begin = gbegin + GN * r / R, end = gbegin + GN * (r + 1) / R, N = end - begin;
  const int S = out_size_, C = cfg_.channels;
  const size_t view_floats = static_cast<size_t>(S) * S * C;
  std::shared_ptr<const std::vector<int64_t>> order = order_for(epoch);

  Batch out;
  out.epoch = epoch;
  out.index = b;
  if (opt_.train && opt_.gpu_augment) {
    // The sources and the drawn parameters only; the device augments.
    SIMCLR_CHECK(opt_.dtype == DType::f32 || opt_.dtype == DType::bf16,
                 "loader: augmentation on the device writes f32 or bf16 views, not ", dtype_name(opt_.dtype));
    std::vector<Sample> samples(static_cast<size_t>(N));
    size_t bytes = 0;
    for (int64_t p = 0; p < N; p++) {
      int64_t idx = (*order)[begin + p];
      samples[p] = ds_->get(idx);
      const Image& im = samples[p].image;
      SIMCLR_CHECK(im.channels == C, "loader: image ", idx, " has ", im.channels, " channel(s), expected ", C);
      bytes += im.pixels.size();
    }
    const int64_t V = 2 * N;
    auto u8 = [&](int64_t n) { return opt_.pinned ? pinned_empty({n}, DType::u8) : Tensor::empty({n}, DType::u8); };
    out.sources = u8(static_cast<int64_t>(std::max<size_t>(bytes, 1)));
    out.view_params = u8(V * static_cast<int64_t>(sizeof(AugmentView)));
    out.labels = Tensor::empty({N}, DType::i64);
    out.indices.resize(static_cast<size_t>(N));
    uint8_t* src = out.sources.data<uint8_t>();
    std::vector<AugmentView> views(static_cast<size_t>(V));
    size_t off = 0;
    for (int64_t p = 0; p < N; p++) {
      const Image& im = samples[p].image;
      const int64_t idx = (*order)[begin + p];
      out.indices[p] = idx;
      out.labels.data<int64_t>()[p] = samples[p].label;
      std::memcpy(src + off, im.pixels.data(), im.pixels.size());
      for (int v = 0; v < 2; v++) {
        AugmentView& av = views[static_cast<size_t>(v * N + p)];
        av.p = sample_view(cfg_.augment, opt_.seed, epoch, idx, v, im.height, im.width, S, S);
        av.src_h = im.height, av.src_w = im.width;
        av.src_offset = static_cast<int64_t>(off);
      }
      off += im.pixels.size();
    }
    std::memcpy(out.view_params.data<uint8_t>(), views.data(), views.size() * sizeof(AugmentView));
    out.augment.views = static_cast<int32_t>(V);
    out.augment.out_h = out.augment.out_w = S;
    out.augment.channels = C;
    out.augment.max_blur_kernel = augment_max_blur_kernel(views.data(), static_cast<int>(V));
    out.augment.norm = make_norm(C, cfg_.mean.data(), cfg_.std.data());
    return out;
  }
  int64_t rows = opt_.train ? 2 * N : N;
  out.views = opt_.pinned ? pinned_empty({rows, S, S, C}, opt_.dtype) : Tensor::empty({rows, S, S, C}, opt_.dtype);
  out.labels = Tensor::empty({N}, DType::i64);
  out.indices.resize(static_cast<size_t>(N));
  int64_t* labels = out.labels.data<int64_t>();  // [N]
  std::vector<float> tmp(view_floats), view(view_floats);
  // Row r of the batch: built in f32 straight into the tensor, or in `view`
  // and rounded to the 16-bit dtype.
  auto emit = [&](int64_t r, const Image& im, const ViewParams& vp) {
    bool f32 = opt_.dtype == DType::f32;
    float* dst = f32 ? out.views.data<float>() + static_cast<size_t>(r) * view_floats : view.data();
    apply_view(dst, tmp.data(), im.pixels.data(), im.height, im.width, C, S, S, vp, cfg_.mean.data(), cfg_.std.data());
    if (opt_.dtype == DType::bf16) {
      bf16* o = out.views.data<bf16>() + static_cast<size_t>(r) * view_floats;
      for (size_t i = 0; i < view_floats; i++) o[i] = bf16(view[i]);
    } else if (opt_.dtype == DType::f16) {
      f16* o = out.views.data<f16>() + static_cast<size_t>(r) * view_floats;
      for (size_t i = 0; i < view_floats; i++) o[i] = f16(view[i]);
    }
  };
  for (int64_t p = 0; p < N; p++) {
    int64_t idx = (*order)[begin + p];
    Sample s = ds_->get(idx);
    const Image& im = s.image;
    SIMCLR_CHECK(im.channels == C, "loader: image ", idx, " has ", im.channels, " channel(s), expected ", C);
    out.indices[p] = idx;
    labels[p] = s.label;
    if (opt_.train) {
      for (int v = 0; v < 2; v++)
        emit(v * N + p, im, sample_view(cfg_.augment, opt_.seed, epoch, idx, v, im.height, im.width, S, S));
    } else {
      emit(p, im, eval_view(im.height, im.width, S, S, cfg_.eval_crop_fraction));
    }
  }
  return out;
}

int64_t Loader::total_batches() const {
  if (opt_.max_epochs <= 0) return -1;
  return opt_.max_epochs * batches_per_epoch_ - (start_.epoch * batches_per_epoch_ + start_.batch);
}

void Loader::start() {
  claimed_ = consumed_ = 0;
  ready_.clear();
  stopping_ = false;
  views_out_ = 0;
  wait_seconds_ = 0;
  t0_ = std::chrono::steady_clock::now();
  for (int i = 0; i < opt_.workers; i++) threads_.emplace_back([this] { worker_loop(); });
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Loader::worker_loop() {
  while (true) {
    int64_t seq;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        if (stopping_) return true;
        int64_t total = total_batches();
        bool more = total < 0 || claimed_ < total;
        return more && claimed_ < consumed_ + opt_.prefetch;
      });
      if (stopping_) return;
      seq = claimed_++;
    }
    int64_t g = start_.epoch * batches_per_epoch_ + start_.batch + seq;
    Slot slot;
    try {
      slot.batch = build(g / batches_per_epoch_, g % batches_per_epoch_);
    } catch (const std::exception& e) {
      slot.error = e.what();
    } catch (...) {
      slot.error = "unknown exception";
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_[seq] = std::move(slot);
    }
    cv_.notify_all();
  }
}

LoaderPosition Loader::position() const {
  std::lock_guard<std::mutex> g(mu_);
  int64_t gidx = start_.epoch * batches_per_epoch_ + start_.batch + consumed_;
  return {gidx / batches_per_epoch_, gidx % batches_per_epoch_};
}

void Loader::seek(LoaderPosition p) {
  SIMCLR_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch < batches_per_epoch_, "loader: cannot seek to epoch ",
               p.epoch, " batch ", p.batch, " (", batches_per_epoch_, " batches per epoch)");
  stop();
  start_ = p;
  start();
}

bool Loader::done() const {
  std::lock_guard<std::mutex> g(mu_);
  int64_t total = total_batches();
  return total >= 0 && consumed_ >= total;
}

Batch Loader::next() {
  int64_t total = total_batches();
  auto t_wait = std::chrono::steady_clock::now();
  Slot slot;
  {
    std::unique_lock<std::mutex> lk(mu_);
    SIMCLR_CHECK(total < 0 || consumed_ < total, "loader: no more batches (max_epochs = ", opt_.max_epochs,
                 " reached)");
    if (opt_.workers == 0) {
      int64_t g = start_.epoch * batches_per_epoch_ + start_.batch + consumed_;
      lk.unlock();
      try {
        slot.batch = build(g / batches_per_epoch_, g % batches_per_epoch_);
      } catch (const std::exception& e) {
        slot.error = e.what();
      }
      lk.lock();
    } else {
      cv_.wait(lk, [&] { return ready_.count(consumed_) != 0; });
      auto it = ready_.find(consumed_);
      slot = std::move(it->second);
      ready_.erase(it);
    }
    consumed_++;
    if (slot.error.empty()) views_out_ += slot.batch.views.defined() ? slot.batch.views.size(0) : slot.batch.augment.views;
    if (opt_.workers > 0)
      wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_wait).count();
  }
  cv_.notify_all();
  SIMCLR_CHECK(slot.error.empty(), "data loader: ", slot.error);
  return std::move(slot.batch);
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  LoaderStats s;
  s.batches = consumed_;
  s.views = views_out_;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  s.views_per_second = s.seconds > 0 ? static_cast<double>(s.views) / s.seconds : 0;
  s.wait_seconds = wait_seconds_;
  s.skipped = ds_->skipped();
  return s;
}

}  // namespace simclr
