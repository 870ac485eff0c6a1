// train/memory.cpp - see memory.h.
#include "train/memory.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "engine/autograd.h"
#include "engine/device.h"
#include "train/model.h"
#include "train/step.h"

namespace simclr {

void cpu_alloc_reset_peak();  // engine/device.cpp: the CPU allocator's peak := its live bytes

namespace {
constexpr double kMargin = 1.15;

// Peak CPU-allocator bytes of one train_step above what was live before it.
double step_peak_bytes(SimclrModel& model, Optimizer& optim, int64_t images, int size, int channels,
                       double temperature) {
  Tensor views = Tensor::empty({2 * images, size, size, channels}, DType::f32);
  float* v = views.data<float>();
  uint32_t x = 12345;
  for (int64_t i = 0; i < views.numel(); i++) {  // any non-constant values (a constant batch has a NaN loss)
    x = x * 1664525u + 1013904223u;
    v[i] = static_cast<float>(x >> 8) / 16777216.0f;
  }
  const size_t before = cpu_alloc_stats().live_bytes;
  cpu_alloc_reset_peak();
  train_step(views, model, optim, 0.0, temperature);
  clear_tape();
  const size_t peak = cpu_alloc_stats().peak_bytes;
  return peak > before ? static_cast<double>(peak - before) : 0.0;
}
}  // namespace

std::string fmt_bytes(double b) {
  char buf[48];
  if (b >= 1e12)
    std::snprintf(buf, sizeof buf, "%.1f TB", b / 1e12);
  else if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.0f MB", b / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0f kB", b / 1e3);
  return buf;
}

MemoryEstimate estimate_train_memory(const RunConfig& cfg, int64_t batch) {
  MemoryEstimate e;
  e.batch = batch;
  // parameters from their shapes: nothing is allocated before materialize()
  double trainable = 0, buffers = 0;
  {
    ParamStore shapes;
    ResNet enc(cfg.model, shapes);
    ProjectionHead head(cfg.head, enc.feature_dim(), shapes);
    for (const Param& p : shapes.params())
      (p.trainable() ? trainable : buffers) += static_cast<double>(p.shape.numel());
  }
  e.params = 4 * (2 * trainable + buffers);
  e.optimizer = 4 * trainable * (cfg.optimizer.name == "adamw" ? 2 : 1);
  const double S = cfg.data.image_size, C = cfg.data.channels;
  e.loader = static_cast<double>(cfg.data.prefetch + cfg.data.workers + 1) * 2.0 * static_cast<double>(batch) * S * S *
             C * 4;
  const AvailableMemory avail = available_memory();
  const double known = kMargin * (e.params + e.optimizer + e.loader);
  if (avail.bytes >= 0 && known > avail.bytes) {  // too large to even try a tiny step
    e.total = known;
    e.fixed = kMargin * (e.params + e.optimizer);
    e.per_image = kMargin * e.loader / static_cast<double>(std::max<int64_t>(batch, 1));
    e.per_pixel = e.per_image / (S * S);
    return e;
  }
  // activations: a + B (h + q S^2), from three tiny steps on a throw-away CPU copy
  SimclrModel m(cfg.model, &cfg.head);
  m.init(cfg.train.seed);
  std::unique_ptr<Optimizer> opt = make_optimizer(cfg.optimizer, m.store);
  const int s0 = 16, s1 = 32, ch = cfg.data.channels;
  step_peak_bytes(m, *opt, 2, s0, ch, cfg.temperature);  // warm-up: lazily allocated state and caches
  const double p20 = step_peak_bytes(m, *opt, 2, s0, ch, cfg.temperature);
  const double p21 = step_peak_bytes(m, *opt, 2, s1, ch, cfg.temperature);
  const double p40 = step_peak_bytes(m, *opt, 4, s0, ch, cfg.temperature);
  const double per_image_s0 = std::max(0.0, (p40 - p20) / 2);  // h + q s0^2
  const double q = std::max(0.0, (p21 - p20) / (2.0 * (s1 * s1 - s0 * s0)));
  const double h = std::max(0.0, per_image_s0 - q * s0 * s0);
  const double a = std::max(0.0, p20 - 2 * per_image_s0);
  const double per_image_act = h + q * S * S;
  e.activations = a + static_cast<double>(batch) * per_image_act;
  e.measured = true;
  e.total = kMargin * (e.params + e.optimizer + e.activations + e.loader);
  e.fixed = kMargin * (e.params + e.optimizer + a);
  e.per_image = kMargin * (per_image_act + e.loader / static_cast<double>(std::max<int64_t>(batch, 1)));
  e.per_image_fixed = kMargin * h;
  e.per_pixel = (e.per_image - e.per_image_fixed) / (S * S);
  return e;
}

namespace {
double read_number_file(const std::string& path) {  // < 0: absent, "max" or unreadable
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return -1;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end && *end == 0 ? v : -1;
}

std::string cgroup_v2_dir() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  return "";
}
}  // namespace

AvailableMemory available_memory() {
  AvailableMemory a;
  a.bytes = -1;
  {
    std::ifstream f("/proc/meminfo");
    std::string key;
    double kb = 0;
    std::string unit;
    while (f >> key >> kb >> unit)
      if (key == "MemAvailable:") {
        a.bytes = kb * 1024;
        a.source = "MemAvailable in /proc/meminfo";
        break;
      }
  }
  auto limit = [&](double max, double current, const std::string& what) {
    if (max < 0 || max > 1e18) return;  // no limit
    const double left = std::max(0.0, max - std::max(current, 0.0));
    if (a.bytes < 0 || left < a.bytes) {
      a.bytes = left;
      a.source = what;
    }
  };
  const std::string d = cgroup_v2_dir();
  if (!d.empty())
    limit(read_number_file(d + "/memory.max"), read_number_file(d + "/memory.current"),
          "the cgroup's memory.max (" + d + ") minus its usage");
  limit(read_number_file("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        read_number_file("/sys/fs/cgroup/memory/memory.usage_in_bytes"), "the cgroup's memory.limit_in_bytes");
  if (const char* t = std::getenv("SIMCLR_TEST_AVAILABLE_MEMORY"); t != nullptr && *t) {  // test seam
    a.bytes = std::strtod(t, nullptr);
    a.source = "SIMCLR_TEST_AVAILABLE_MEMORY";
  }
  return a;
}

std::string check_train_memory(const RunConfig& cfg, int64_t batch) {
  if (const char* s = std::getenv("SIMCLR_NO_MEMORY_CHECK"); s != nullptr && std::string(s) == "1") return "";
  const AvailableMemory avail = available_memory();
  if (avail.bytes < 0) return "";
  const MemoryEstimate e = estimate_train_memory(cfg, batch);
  if (e.total <= avail.bytes)
    return e.total > 0.8 * avail.bytes
               ? "this run needs about " + fmt_bytes(e.total) + " of memory, " +
                     std::to_string(static_cast<int>(std::lround(100 * e.total / avail.bytes))) + "% of the " +
                     fmt_bytes(avail.bytes) + " available"
               : "";
  std::ostringstream m;
  m << "this run needs about " << fmt_bytes(e.total) << " of memory but only " << fmt_bytes(avail.bytes)
    << " are available (" << avail.source << "): parameters and gradients " << fmt_bytes(e.params)
    << ", optimiser state " << fmt_bytes(e.optimizer) << ", ";
  if (e.measured)
    m << "activations of one step (train.batch " << batch << " at data.image_size " << cfg.data.image_size << ") "
      << fmt_bytes(e.activations) << ", ";
  else
    m << "activations not estimated (the rest alone does not fit), ";
  m << "the loader's batches in flight " << fmt_bytes(e.loader) << " (estimate x1.15; docs/checkpoint.md). ";
  const double room = 0.9 * avail.bytes - e.fixed;
  const int64_t fit_batch = room > 0 && e.per_image > 0 ? static_cast<int64_t>(room / e.per_image) : 0;
  if (e.fixed > 0.9 * avail.bytes) {
    m << "The model alone (" << fmt_bytes(e.fixed) << " with its optimiser state) does not fit: lower model.width";
    if (cfg.head.hidden > 0 || cfg.head.out > 4096) m << " or head.hidden / head.out (now " << cfg.head.hidden << " / " << cfg.head.out << ")";
    m << ", or train on a machine with more memory";
  } else {
    // the largest image size that fits at this batch: B (h + p S^2) <= room
    const double per_img_room = room / static_cast<double>(std::max<int64_t>(batch, 1)) - e.per_image_fixed;
    const int fit_size = per_img_room > 0 && e.per_pixel > 0
                             ? static_cast<int>(std::sqrt(per_img_room / e.per_pixel)) : 0;
    if (fit_batch >= 2) m << "Try --set train.batch=" << fit_batch << " (it fits at this image size)";
    if (fit_size >= 8 && fit_size < cfg.data.image_size)
      m << (fit_batch >= 2 ? ", or " : "Try ") << "--set data.image_size=" << fit_size << " (it fits at train.batch "
        << batch << ")";
    else if (fit_batch < 2)
      m << "Lower data.image_size (now " << cfg.data.image_size << ") and train.batch, or model.width";
  }
  m << ". SIMCLR_NO_MEMORY_CHECK=1 skips this check";
  fail(m.str());
}

}  // namespace simclr
