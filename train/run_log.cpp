// train/run_log.cpp - see run_log.h.
#include "train/run_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdarg>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/check.h"
#include "engine/fileio.h"

namespace simclr {

namespace fs = std::filesystem;

void append_metrics(const std::string& run_dir, const json& line) {
  append_file((fs::path(run_dir) / "metrics.jsonl").string(), line.dump() + "\n");  // every write checked
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

RunLog::RunLog(std::string run_dir, std::FILE* out, bool tty, bool enabled)
    : run_dir_(std::move(run_dir)), out_(out), tty_(tty), enabled_(enabled) {}

void RunLog::vsay(const char* prefix, const char* fmt, va_list ap) {
  if (!enabled_ || !out_ || silenced_) return;
  std::fputs(prefix, out_);
  std::vfprintf(out_, fmt, ap);
  if (std::fflush(out_) != 0 || std::ferror(out_)) {  // a full disk under a redirected console, a closed terminal
    const int err = errno;
    write_failed_ = true;
    std::clearerr(out_);
    fail("cannot write the console output", out_ == stdout ? " (standard output)" : "", ": ", std::strerror(err));
  }
}

void RunLog::say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("", fmt, ap);
  va_end(ap);
}

void RunLog::report(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(tty_ ? "\r\x1b[K" : "", fmt, ap);
  va_end(ap);
}

void RunLog::progress(const Progress& p, bool due) {
  if (tty_)
    say("\r\x1b[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4f  %.0f views/s  input wait %.0f%%  ETA %s",
        static_cast<long long>(p.epoch), static_cast<long long>(p.epochs), static_cast<long long>(p.step),
        static_cast<long long>(p.total), p.loss, p.lr, p.views_per_s, 100 * p.wait_frac,
        fmt_duration(p.eta_s).c_str());
  else if (due)
    say("epoch %lld/%lld step %lld/%lld loss %.4f lr %.4f %.0f views/s input wait %.0f%% ETA %s\n",
        static_cast<long long>(p.epoch), static_cast<long long>(p.epochs), static_cast<long long>(p.step),
        static_cast<long long>(p.total), p.loss, p.lr, p.views_per_s, 100 * p.wait_frac,
        fmt_duration(p.eta_s).c_str());
}

void RunLog::finish() {
  if (tty_) say("\n");
}

void RunLog::metrics(const json& line) {
  if (!enabled_ || silenced_) return;
  try {
    append_metrics(run_dir_, line);
  } catch (const Error&) {
    write_failed_ = true;
    throw;
  }
}

void RunLog::start_metrics_fresh() {
  if (!enabled_) return;
  std::error_code ec;
  fs::remove(fs::path(run_dir_) / "metrics.jsonl", ec);
}

int64_t RunLog::start_metrics_resumed(int64_t step, const std::string& keep_cut_in) {
  if (!enabled_) return 0;
  fs::path p = fs::path(run_dir_) / "metrics.jsonl";
  if (!fs::exists(p)) return 0;
  const std::string all = read_file(p.string());
  std::istringstream in(all);
  std::string line, kept;
  int64_t cut = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step) {
        cut++;
        continue;
      }
    } catch (const json::exception&) {
      continue;  // a torn last line from a kill
    }
    kept += line + "\n";
  }
  if (cut > 0 && !keep_cut_in.empty()) write_file_atomic(keep_cut_in, all);
  write_file_atomic(p.string(), kept);
  return cut;
}

}  // namespace simclr
