// train/run_config.cpp - see run_config.h.
#include "train/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace simclr {

namespace {
int depth_of_arch(const std::string& a) {
  if (a == "resnet18") return 18;
  if (a == "resnet34") return 34;
  if (a == "resnet50") return 50;
  if (a == "resnet101") return 101;
  return 152;
}
}  // namespace

RunConfig parse_run_config(const json& root) {
  RunConfig c;
  ConfigObject r(root, "");

  ConfigObject d = r.child("data");
  c.data = parse_data_config(d);

  ConfigObject m = r.child("model");
  std::string arch = m.get_choice("arch", "resnet18", {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"});
  c.model.depth = depth_of_arch(arch);
  c.model.width = m.get_double("width", 1.0, 1.0 / 64, 64);
  std::string stem = m.get_choice("stem", "auto", {"auto", "imagenet", "cifar"});
  if (stem == "auto") stem = c.data.image_size <= 64 ? "cifar" : "imagenet";
  c.model.stem = stem;
  c.model.in_channels = c.data.channels;
  c.model.zero_init_residual = m.get_bool("zero_init_residual", false);
  c.model.bn_momentum = m.get_double("bn_momentum", 0.1, 0, 1);
  c.model.bn_eps = m.get_double("bn_eps", 1e-5, 1e-12, 1);
  c.model.global_bn = m.get_choice("bn", "global", {"global", "local"}) == "global";
  m.finish();

  ConfigObject h = r.child("head");
  c.head.depth = static_cast<int>(h.get_int("depth", 2, 1, 4));
  c.head.hidden = h.get_int("hidden", 0, 0, 1 << 16);
  c.head.out = h.get_int("out", 128, 1, 1 << 16);
  c.head.bn = h.get_bool("bn", true);
  c.head.bn_momentum = c.model.bn_momentum;
  c.head.bn_eps = c.model.bn_eps;
  h.finish();

  ConfigObject l = r.child("loss");
  c.temperature = l.get_double("temperature", 0.5, 1e-3, 100);
  l.finish();

  ConfigObject o = r.child("optimizer");
  OptimizerConfig& oc = c.optimizer;
  oc.name = o.get_choice("name", "lars", {"lars", "sgd", "adamw"});
  oc.lr = o.get_double("lr", 0.3, 0, 1000);
  oc.lr_scaling = o.get_choice("lr_scaling", "linear", {"linear", "sqrt", "none"});
  oc.momentum = o.get_double("momentum", 0.9, 0, 0.9999);
  oc.weight_decay = o.get_double("weight_decay", 1e-6, 0, 1);
  oc.eta = o.get_double("eta", 0.001, 1e-9, 1);
  oc.nesterov = o.get_bool("nesterov", false);
  oc.beta1 = o.get_double("beta1", 0.9, 0, 0.9999);
  oc.beta2 = o.get_double("beta2", 0.999, 0, 0.999999);
  oc.eps = o.get_double("eps", 1e-8, 1e-12, 1);
  SIMCLR_CHECK(!(oc.name == "sgd" && oc.nesterov && oc.momentum == 0), "config: 'optimizer.nesterov' needs 'optimizer.momentum' > 0");
  o.finish();

  ConfigObject s = r.child("schedule");
  // default (absent): min(10, epochs / 10), the paper's 10 epochs for long runs
  c.warmup_epochs = s.get_double("warmup_epochs", -1, 0, 1e6);
  s.finish();

  ConfigObject t = r.child("train");
  TrainConfig& tc = c.train;
  tc.epochs = t.get_int("epochs", 100, 1, 1000000);
  tc.batch = t.get_int("batch", 256, 2, 1 << 20);
  tc.seed = static_cast<uint64_t>(t.get_int("seed", 0, 0, INT64_MAX));
  tc.device = t.get_string("device", "auto");
  if (tc.device != "auto") {
    try {
      (void)Device::parse(tc.device);
    } catch (const Error&) {
      fail("config: 'train.device' = \"", tc.device,
           "\" is not one of: auto, cpu, cuda, cuda:<k>, emu (the emulated test device)");
    }
  }
  tc.threads = static_cast<int>(t.get_int("threads", 0, 0, 1024));
  tc.run_dir = t.get_string("run_dir", "runs/simclr");
  SIMCLR_CHECK(!tc.run_dir.empty(), "config: 'train.run_dir' must not be empty");
  tc.checkpoint_every = t.get_int("checkpoint_every", 1, 0, 1000000);
  tc.keep_last = static_cast<int>(t.get_int("keep_last", 3, 1, 1000));
  tc.log_interval = t.get_int("log_interval", 50, 1, 1000000000);
  tc.max_steps = t.get_int("max_steps", 0, 0, INT64_MAX);
  tc.profile = t.get_bool("profile", false);
  tc.precision = t.get_string("precision", "fp32");
  SIMCLR_CHECK(tc.precision == "fp32" || tc.precision == "tf32" || tc.precision == "bf16", "config: 'train.precision' = \"",
               tc.precision, "\" is not one of: fp32, tf32, bf16");
  tc.conv_impl = t.get_string("conv_impl", "cudnn");
  SIMCLR_CHECK(tc.conv_impl == "cudnn" || tc.conv_impl == "ours", "config: 'train.conv_impl' = \"", tc.conv_impl,
               "\" is not one of: cudnn, ours");
  tc.deterministic = t.get_bool("deterministic", false);
  tc.cuda_graph = t.get_bool("cuda_graph", false);
  tc.grad_bucket_mb = t.get_double("grad_bucket_mb", 25.0, 0.0, 1e6);
  t.finish();
  if (c.warmup_epochs < 0) c.warmup_epochs = std::min(10.0, 0.1 * static_cast<double>(tc.epochs));
  SIMCLR_CHECK(c.warmup_epochs <= static_cast<double>(tc.epochs), "config: 'schedule.warmup_epochs' = ", c.warmup_epochs,
               " exceeds 'train.epochs' = ", tc.epochs);
  SIMCLR_CHECK(c.data.subset == 0 || c.data.subset >= tc.batch || !c.data.drop_last, "config: 'data.subset' = ",
               c.data.subset, " is smaller than 'train.batch' = ", tc.batch, " (no full batch with drop_last)");

  ConfigObject e = r.child("eval");
  EvalConfig& ec = c.eval;
  ec.knn_every = e.get_int("knn_every", 0, 0, 1000000);
  ec.knn_k = static_cast<int>(e.get_int("knn_k", 200, 1, 100000));
  ec.knn_temperature = e.get_double("knn_temperature", 0.1, 1e-4, 100);
  ec.linear_at_end = e.get_bool("linear_at_end", true);
  ec.raw_pixels = e.get_bool("raw_pixels", false);
  ec.random_init = e.get_bool("random_init", false);
  ec.l2_grid = e.get_doubles("l2_grid", ec.l2_grid, 0, 1e6);
  SIMCLR_CHECK(!ec.l2_grid.empty(), "config: 'eval.l2_grid' must list at least one value");
  ec.val_fraction = e.get_double("val_fraction", 0.1, 0.01, 0.5);
  ec.max_iter = static_cast<int>(e.get_int("max_iter", 150, 1, 100000));
  ec.batch = e.get_int("batch", 512, 1, 1 << 20);
  ec.holdout = e.get_double("holdout", 0.0, 0.0, 0.5);
  ec.holdout_seed = static_cast<uint64_t>(e.get_int("holdout_seed", 0, 0, INT64_MAX));
  SIMCLR_CHECK(ec.holdout == 0 || c.data.split == "train", "config: 'eval.holdout' needs 'data.split' = \"train\" (got \"",
               c.data.split, "\"): the held-out images are carved from the training split");
  e.finish();

  r.finish();
  return c;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides, json* resolved) {
  json root = read_json_file(path);
  SIMCLR_CHECK(root.is_object(), "'", path, "': a run config must be a JSON object");
  for (const std::string& o : overrides) apply_override(root, o);
  RunConfig c = parse_run_config(root);
  if (resolved) *resolved = run_config_to_json(c);
  return c;
}

json run_config_to_json(const RunConfig& c) {
  json j;
  j["data"] = data_config_to_json(c.data);
  j["model"] = {{"arch", "resnet" + std::to_string(c.model.depth)},
                {"width", c.model.width},
                {"stem", c.model.stem},
                {"zero_init_residual", c.model.zero_init_residual},
                {"bn_momentum", c.model.bn_momentum},
                {"bn_eps", c.model.bn_eps},
                {"bn", c.model.global_bn ? "global" : "local"}};
  j["head"] = {{"depth", c.head.depth}, {"hidden", c.head.hidden}, {"out", c.head.out}, {"bn", c.head.bn}};
  j["loss"] = {{"temperature", c.temperature}};
  const OptimizerConfig& o = c.optimizer;
  j["optimizer"] = {{"name", o.name},     {"lr", o.lr},       {"lr_scaling", o.lr_scaling},
                    {"momentum", o.momentum}, {"weight_decay", o.weight_decay}, {"eta", o.eta},
                    {"nesterov", o.nesterov}, {"beta1", o.beta1}, {"beta2", o.beta2},
                    {"eps", o.eps}};
  j["schedule"] = {{"warmup_epochs", c.warmup_epochs}};
  const TrainConfig& t = c.train;
  j["train"] = {{"epochs", t.epochs},
                {"batch", t.batch},
                {"seed", t.seed},
                {"device", t.device},
                {"threads", t.threads},
                {"run_dir", t.run_dir},
                {"checkpoint_every", t.checkpoint_every},
                {"keep_last", t.keep_last},
                {"log_interval", t.log_interval},
                {"max_steps", t.max_steps},
                {"profile", t.profile},
                {"precision", t.precision},
                {"conv_impl", t.conv_impl},
                {"deterministic", t.deterministic},
                {"cuda_graph", t.cuda_graph},
                {"grad_bucket_mb", t.grad_bucket_mb}};
  const EvalConfig& e = c.eval;
  j["eval"] = {{"knn_every", e.knn_every},
               {"knn_k", e.knn_k},
               {"knn_temperature", e.knn_temperature},
               {"linear_at_end", e.linear_at_end},
               {"raw_pixels", e.raw_pixels},
               {"random_init", e.random_init},
               {"l2_grid", e.l2_grid},
               {"val_fraction", e.val_fraction},
               {"max_iter", e.max_iter},
               {"batch", e.batch},
               {"holdout", e.holdout},
               {"holdout_seed", e.holdout_seed}};
  return j;
}

void check_run_paths(const RunConfig& c) {
  check_data_paths(c.data, c.data.split);
  const bool needs_test = c.eval.knn_every > 0 || c.eval.linear_at_end || c.eval.raw_pixels || c.eval.random_init;
  if (needs_test && c.data.split == "train" && c.eval.holdout == 0) {  // a holdout: the test split is not used
    SIMCLR_CHECK(has_split(c.data, "test"), "config: evaluation needs a test split but 'data' has none ",
                 "(set the test path, or turn off eval.knn_every / eval.linear_at_end)");
    check_data_paths(c.data, "test");
  }
}

namespace {
const std::set<std::string>& may_differ() {
  static const std::set<std::string> s = {
      "train.device", "train.threads", "train.run_dir", "train.checkpoint_every", "train.keep_last",
      "train.log_interval", "train.max_steps", "train.profile", "train.precision", "train.conv_impl",
      "train.deterministic", "train.cuda_graph", "train.grad_bucket_mb", "data.workers", "data.prefetch",
      "data.strict", "model.bn",
      "data.augment_on",  // the same views on either side
      "eval"};
  return s;
}
// A value as a message shows it: floats with 12 significant digits (0.3, not 0.30000000000000004).
std::string shown(const json& v) {
  if (!v.is_number_float()) return v.dump();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.12g", v.get<double>());
  std::string r = buf;
  if (r.find_first_of(".en") == std::string::npos) r += ".0";  // still a float: 2.0, not 2
  return r;
}
std::string first_mismatch(const json& a, const json& b, const std::string& path) {
  if (may_differ().count(path)) return "";
  if (a.is_number() && b.is_number() && (a.is_number_float() || b.is_number_float())) {
    // derived values (e.g. a warm-up of 5% of the epochs) may differ in the last bit only: the same value
    const double x = a.get<double>(), y = b.get<double>();
    if (std::abs(x - y) <= 1e-12 * std::max(std::abs(x), std::abs(y))) return "";
    return path + " (" + shown(a) + " in the checkpoint, " + shown(b) + " now)";
  }
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const std::string& k : keys) {
      const std::string p = path.empty() ? k : path + "." + k;
      if (may_differ().count(p)) continue;
      if (!a.contains(k) || !b.contains(k))
        return p + " (" + (a.contains(k) ? shown(a[k]) : "absent") + " in the checkpoint, " +
               (b.contains(k) ? shown(b[k]) : "absent") + " now)";
      std::string r = first_mismatch(a[k], b[k], p);
      if (!r.empty()) return r;
    }
    return "";
  }
  if (a != b) return path + " (" + shown(a) + " in the checkpoint, " + shown(b) + " now)";
  return "";
}
}  // namespace

std::string config_mismatch(const json& saved, const json& now) {
  // eval.* may differ, except the holdout: it changes the pretraining images
  for (const char* k : {"holdout", "holdout_seed"}) {
    auto get = [k](const json& j) {
      return j.contains("eval") && j["eval"].is_object() && j["eval"].contains(k) ? j["eval"][k] : json(0);
    };
    if (get(saved) != get(now))
      return std::string("eval.") + k + " (" + get(saved).dump() + " in the checkpoint, " + get(now).dump() + " now)";
  }
  return first_mismatch(saved, now, "");
}

json quickstart_config() {
  // ResNet-18, CIFAR stem, width 0.25 on Fashion-MNIST 28x28x1; the issue's
  // PyTorch recipe (batch 256, 5% warm-up, cosine, tau 0.5, crop scale 0.2-1,
  // flip, brightness/contrast 0.4 with p 0.8, no blur) with the LARS lr the
  // recipe study chose on a held-out split: 9.6 at batch 256 (the PyTorch
  // recipe's 1.2 gave 2 points less at 3 epochs; docs/results.md, "Recipe study").
  return json::parse(R"({
    "data": {
      "dataset": "fashion-mnist",
      "augment": { "crop_scale": [0.2, 1.0], "jitter_strength": 0.5, "jitter_p": 0.8,
                   "gray_p": 0.0, "blur_p": 0.0 }
    },
    "model": { "arch": "resnet18", "width": 0.25, "stem": "cifar" },
    "head": { "depth": 2, "out": 128 },
    "loss": { "temperature": 0.5 },
    "optimizer": { "name": "lars", "lr": 9.6, "lr_scaling": "linear" },
    "schedule": { "warmup_epochs": 0.15 },
    "train": { "epochs": 3, "batch": 256, "seed": 0, "run_dir": "runs/quickstart",
               "checkpoint_every": 1, "keep_last": 2, "log_interval": 20 },
    "eval": { "knn_every": 0, "linear_at_end": true, "raw_pixels": true, "random_init": true }
  })");
}

}  // namespace simclr
