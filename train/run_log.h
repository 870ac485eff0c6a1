// train/run_log.h - everything a training run prints or records goes through
// one RunLog: the console (notes, the progress line, epoch and evaluation
// lines) and <run_dir>/metrics.jsonl (docs/checkpoint.md lists its lines).
// A RunLog built with enabled = false writes nothing at all, so a
// multi-process run gives every rank one and enables only rank 0's.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/json_config.h"

namespace simclr {

// Appends one JSON line to <run_dir>/metrics.jsonl (the evaluation commands use it too).
void append_metrics(const std::string& run_dir, const json& line);

// "12m05s", "1h02m" ("?" when not finite or negative).
std::string fmt_duration(double seconds);

class RunLog {
 public:
  // out: the console (nullptr: none); tty: a live progress line (\r) instead of periodic lines.
  RunLog(std::string run_dir, std::FILE* out, bool tty, bool enabled = true);

  bool enabled() const { return enabled_; }
  bool tty() const { return tty_; }
  // A write of the console or of metrics.jsonl has failed (it threw; the
  // trainer then tries to save a checkpoint, train/trainer.cpp).
  bool write_failed() const { return write_failed_; }
  // No more console or metrics writes (after a failed one).
  void silence() { silenced_ = true; }

  // Console text as printf writes it (notes, warnings, the run header).
  void say(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // A whole line that replaces the live progress line on a terminal.
  void report(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // The progress of one step: on a terminal the live line (every step), else
  // a line when `due` (every log_interval steps and at the last step).
  struct Progress {
    int64_t epoch = 0, epochs = 0, step = 0, total = 0;  // epoch 1-based
    double loss = 0, lr = 0, views_per_s = 0, eta_s = 0;
    double wait_frac = 0;  // fraction of the run's time spent waiting for the input pipeline
  };
  void progress(const Progress& p, bool due);
  // Ends the run's console output (a terminal's live line gets its newline).
  void finish();

  // One metrics.jsonl line.
  void metrics(const json& line);
  // A fresh run: no metrics.jsonl. A resumed one: keeps the lines up to and
  // including `step` (the interrupted run's lines after its checkpoint go).
  // With `keep_cut_in` set and any line cut, the whole file is first copied
  // there (a resume from an older checkpoint must not lose history silently);
  // returns the number of lines cut.
  void start_metrics_fresh();
  int64_t start_metrics_resumed(int64_t step, const std::string& keep_cut_in = "");

 private:
  void vsay(const char* prefix, const char* fmt, va_list ap);
  std::string run_dir_;
  std::FILE* out_;
  bool tty_, enabled_;
  bool write_failed_ = false, silenced_ = false;
};

}  // namespace simclr
