// train/finetune.cpp - see finetune.h.
#include "train/finetune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "data/data_config.h"
#include "data/holdout.h"
#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/fileio.h"
#include "losses/losses.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "models/head.h"
#include "models/resnet.h"
#include "train/model.h"
#include "train/run_log.h"

namespace simclr {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The images `idx` of ds, in that order.
std::vector<int64_t> read_subset_file(const std::string& path, int64_t n) {
  std::ifstream f(path);
  SIMCLR_CHECK(f.good(), "finetune: cannot read the subset file '", path, "'");
  std::vector<int64_t> idx;
  std::set<int64_t> seen;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    lineno++;
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    std::istringstream is(line);
    int64_t v = -1;
    std::string rest;
    SIMCLR_CHECK(static_cast<bool>(is >> v) && !(is >> rest), "finetune: '", path, "' line ", lineno,
                 ": expected one image index, got '", line, "'");
    SIMCLR_CHECK(v >= 0 && v < n, "finetune: '", path, "' line ", lineno, ": index ", v,
                 " is outside the train split (0 .. ", n - 1, ")");
    SIMCLR_CHECK(seen.insert(v).second, "finetune: '", path, "' line ", lineno, ": index ", v, " is listed twice");
    idx.push_back(v);
  }
  SIMCLR_CHECK(!idx.empty(), "finetune: the subset file '", path, "' lists no image");
  return idx;
}

// Encoder [+ the first head_layers layers of the pretrained projection head]
// + a new linear classifier, in one parameter store.
struct FtModel {
  ParamStore store;
  std::unique_ptr<ResNet> encoder;
  std::unique_ptr<ProjectionHead> kept, classifier;
  int head_layers = 0;
  FtModel(const RunConfig& cfg, int classes, int keep) : head_layers(keep) {
    encoder = std::make_unique<ResNet>(cfg.model, store);
    int64_t in = encoder->feature_dim();
    if (keep > 0) {
      SIMCLR_CHECK(keep < cfg.head.depth, "finetune: --head-layers ", keep, " must be below the head's depth ",
                   cfg.head.depth, " (its last layer is the projection itself)");
      kept = std::make_unique<ProjectionHead>(cfg.head, in, store, "head.");
      in = kept->width_after(keep);
    }
    HeadConfig hc;
    hc.depth = 1;
    hc.out = classes;
    hc.bn = false;
    classifier = std::make_unique<ProjectionHead>(hc, in, store, "classifier.");
    store.materialize();
  }
  void init(uint64_t seed) {
    encoder->init(seed);
    if (kept) kept->init(seed);
    classifier->init(seed);
  }
  // Every tensor but the classifier's from the pretrained weights (the kept head's too).
  void load(const Checkpoint& ck, const std::string& what) {
    for (Param& p : store.params()) {
      if (p.name.rfind("classifier.", 0) == 0) continue;
      if (!kept && (p.flags & kIsHead)) continue;
      const CheckpointTensor* t = ck.find(p.name);
      SIMCLR_CHECK(t != nullptr, "finetune: '", what, "' has no tensor '", p.name, "'",
                   p.name.rfind("head.", 0) == 0
                       ? " (an exported encoder has no projection head: --head-layers needs a training checkpoint)"
                       : " (another architecture?)");
      SIMCLR_CHECK(t->tensor.shape() == p.shape, "finetune: '", p.name, "' has shape ", t->tensor.shape().str(),
                   " in '", what, "' but ", p.shape.str(), " in the model");
      p.value.copy_from(t->tensor);
    }
  }
  Tensor forward(const Tensor& x, bool training) {
    Tensor h = encoder->forward(x, training);
    if (kept) h = kept->forward(h, training, nullptr, head_layers);
    return classifier->forward(h, training);
  }
};

// Top-1 / top-5 of the model on ds (evaluation mode).
void accuracy(FtModel& m, std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch, double* top1,
              double* top5) {
  NoGrad ng;
  Loader loader(ds, dc, eval_loader_options(dc, batch));
  int64_t n = 0, c1 = 0, c5 = 0;
  while (!loader.done()) {
    Batch b = loader.next();
    const Tensor logits = m.forward(b.views, false).to(Device::cpu());
    const int64_t N = logits.size(0), K = logits.size(1);
    const float* l = logits.data<float>();
    const int64_t* y = b.labels.data<int64_t>();
    for (int64_t i = 0; i < N; i++) {
      const float ly = l[i * K + y[i]];
      int64_t above = 0;  // classes scored strictly higher than the true one
      for (int64_t k = 0; k < K; k++) above += l[i * K + k] > ly;
      c1 += above == 0;
      c5 += above < 5;
    }
    n += N;
  }
  *top1 = n ? static_cast<double>(c1) / static_cast<double>(n) : 0.0;
  *top5 = n ? static_cast<double>(c5) / static_cast<double>(n) : 0.0;
}

}  // namespace

json FinetuneResult::to_json() const {
  return {{"top1", top1},   {"top5", top5},   {"train_top1", train_top1}, {"labelled", labelled},
          {"steps", steps}, {"epochs", epochs}, {"lr", lr},               {"seconds", seconds},
          {"subset", subset_path}};
}

std::vector<int64_t> balanced_subset(const std::vector<int64_t>& labels, int num_classes, double fraction,
                                     uint64_t seed) {
  SIMCLR_CHECK(fraction > 0 && fraction <= 1, "finetune: --fraction must be in (0, 1], got ", fraction);
  SIMCLR_CHECK(num_classes >= 2, "finetune: the train split needs labels of at least 2 classes, it has ",
               num_classes);
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < labels.size(); i++) {
    SIMCLR_CHECK(labels[i] >= 0 && labels[i] < num_classes, "finetune: image ", i, " has label ", labels[i],
                 " (expected 0 .. ", num_classes - 1, "; unlabelled images cannot be fine-tuned on)");
    by_class[static_cast<size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  }
  std::vector<int64_t> out;
  for (int c = 0; c < num_classes; c++) {
    std::vector<int64_t>& v = by_class[static_cast<size_t>(c)];
    if (v.empty()) continue;
    std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(c));
    std::shuffle(v.begin(), v.end(), rng);
    const auto k = std::clamp<int64_t>(std::llround(fraction * static_cast<double>(v.size())), 1,
                                       static_cast<int64_t>(v.size()));
    out.insert(out.end(), v.begin(), v.begin() + k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

FinetuneResult finetune(const RunConfig& cfg, const Checkpoint* ck, const FinetuneOptions& opt) {
  const double t0 = now_s();
  SIMCLR_CHECK(opt.random_init || ck != nullptr, "finetune: no pretrained weights given (or pass --random-init)");
  SIMCLR_CHECK(opt.batch >= 2, "finetune: --batch must be >= 2, got ", opt.batch);
  FinetuneResult res;
  std::shared_ptr<Dataset> train_ds = open_dataset(cfg.data, "train");
  std::shared_ptr<Dataset> test_ds = open_dataset(cfg.data, "test");
  const int K = std::max(train_ds->num_classes(), test_ds->num_classes());

  // ---- the labelled subset
  std::vector<int64_t> idx;
  if (!opt.subset_file.empty()) {
    idx = read_subset_file(opt.subset_file, train_ds->size());
    res.subset_path = opt.subset_file;
  } else {
    std::vector<int64_t> labels(static_cast<size_t>(train_ds->size()));
    for (int64_t i = 0; i < train_ds->size(); i++) labels[static_cast<size_t>(i)] = train_ds->get(i).label;
    idx = balanced_subset(labels, train_ds->num_classes(), opt.fraction, opt.seed);
    if (!opt.out_dir.empty()) {
      std::string text = detail::cat("# simclr finetune: class-balanced subset, fraction ", opt.fraction, ", seed ",
                                     opt.seed, ", of ", train_ds->describe(), "\n");
      for (int64_t i : idx) text += std::to_string(i) + "\n";
      char name[96];
      std::snprintf(name, sizeof name, "finetune_subset_%g_seed%llu.txt", opt.fraction,
                    static_cast<unsigned long long>(opt.seed));
      res.subset_path = opt.out_dir + "/" + name;
      write_file_atomic(res.subset_path, text);
    }
  }
  res.labelled = static_cast<int64_t>(idx.size());
  const int64_t batch = std::min<int64_t>(opt.batch, res.labelled);
  SIMCLR_CHECK(batch >= 2, "finetune: the labelled subset has ", res.labelled, " image(s): at least 2 are needed");
  std::shared_ptr<Dataset> labelled = index_subset(train_ds, idx, "labelled subset");

  // ---- light augmentation: random resized crop and flip only
  DataConfig dc = cfg.data;
  dc.augment.jitter_p = 0;
  dc.augment.gray_p = 0;
  dc.augment.blur_p = 0;
  dc.augment.solarize_p = 0;
  Loader loader(labelled, dc, train_loader_options(dc, batch, opt.seed));

  // ---- encoder [+ the head's first layers] + a linear classifier
  FtModel m(cfg, K, opt.head_layers);
  m.init(opt.seed);
  if (!opt.random_init) m.load(*ck, opt.source.empty() ? "the checkpoint" : opt.source);
  SgdConfig sc;
  sc.momentum = 0.9;
  sc.nesterov = true;
  sc.weight_decay = 0;
  Sgd sgd(sc, m.store);
  res.epochs = opt.epochs > 0 ? opt.epochs : (opt.fraction <= 0.01 && opt.subset_file.empty() ? 60 : 30);
  res.steps = res.epochs * loader.batches_per_epoch();
  res.lr = opt.lr > 0 ? opt.lr : 0.05 * static_cast<double>(batch) / 256.0;
  const Schedule sched(res.lr, 0, res.steps);
  if (!opt.quiet)
    std::printf("simclr finetune: %s encoder%s + linear classifier (%d classes) on %lld labelled images, batch %lld, "
                "%lld epochs (%lld steps), SGD Nesterov lr %g cosine\n",
                opt.random_init ? "random-init" : "pretrained",
                opt.head_layers > 0 ? detail::cat(" + ", opt.head_layers, " head layer(s)").c_str() : "", K, static_cast<long long>(res.labelled),
                static_cast<long long>(batch), static_cast<long long>(res.epochs), static_cast<long long>(res.steps),
                res.lr);
  double last_loss = 0;
  for (int64_t s = 0; s < res.steps; s++) {
    Batch b = loader.next();
    const int64_t N = b.size();
    m.store.zero_grad();
    const Tensor views = b.views.slice0(0, N);  // view 1 of each image
    Tensor loss = cross_entropy(m.forward(views, true), b.labels);
    last_loss = loss.item();
    SIMCLR_CHECK(std::isfinite(last_loss), "finetune: the loss is not finite (", last_loss, ") at step ", s,
                 ": lower --lr");
    backward(loss);
    sgd.step(sched.lr(s));
    if (!opt.quiet && ((s + 1) % loader.batches_per_epoch() == 0) &&
        ((s + 1) / loader.batches_per_epoch()) % 10 == 0)
      std::printf("  epoch %lld/%lld: loss %.4f\n", static_cast<long long>((s + 1) / loader.batches_per_epoch()),
                  static_cast<long long>(res.epochs), last_loss);
  }
  accuracy(m, test_ds, cfg.data, 256, &res.top1, &res.top5);
  double t5 = 0;
  accuracy(m, labelled, cfg.data, 256, &res.train_top1, &t5);
  res.seconds = now_s() - t0;
  if (!opt.out_dir.empty()) {
    json line = res.to_json();
    line["eval"] = "finetune";
    line["what"] = opt.random_init ? "random-init encoder" : "SimCLR encoder";
    line["fraction"] = opt.subset_file.empty() ? opt.fraction : static_cast<double>(res.labelled) /
                                                                    static_cast<double>(train_ds->size());
    append_metrics(opt.out_dir, line);
  }
  return res;
}

}  // namespace simclr
