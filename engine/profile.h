// engine/profile.h - a tiny wall-clock profile by name (op or phase), for the
// trainer's "where does the time go" report. Off by default; when off an
// OpTimer costs one branch. Not thread-safe by design: only the thread that
// runs the training step records (ops parallelise internally).
//
//   profile_enable(true);
//   { OpTimer t("conv2d"); y = conv2d(...); }
//   for (auto& e : profile_snapshot()) printf("%s %.3f s\n", e.name.c_str(), e.seconds);
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace simclr {

void profile_enable(bool on);
bool profile_enabled();
void profile_add(const char* name, double seconds);
// Adds under "<op>.backward" (the autograd tape times each backward node).
void profile_add_backward(const char* op, double seconds);
void profile_reset();

struct ProfileEntry {
  std::string name;
  double seconds = 0;
  int64_t calls = 0;
};
// Entries sorted by time, largest first.
std::vector<ProfileEntry> profile_snapshot();

// Adds the scope's wall time under `name` (a string literal) when profiling is on.
class OpTimer {
 public:
  explicit OpTimer(const char* name) : name_(profile_enabled() ? name : nullptr) {
    if (name_) t0_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (name_)
      profile_add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  const char* name_;
  std::chrono::steady_clock::time_point t0_;
};

// Times one backward node of the tape under "<op>.backward" when profiling is on.
class BackwardTimer {
 public:
  explicit BackwardTimer(const char* op) : op_(profile_enabled() ? op : nullptr) {
    if (op_) t0_ = std::chrono::steady_clock::now();
  }
  ~BackwardTimer() {
    if (op_)
      profile_add_backward(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  BackwardTimer(const BackwardTimer&) = delete;
  BackwardTimer& operator=(const BackwardTimer&) = delete;

 private:
  const char* op_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace simclr
