// tools/cli/report_cli.cpp - see report_cli.h.
#include "tools/cli/report_cli.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/check.h"

extern char** environ;

namespace simclr {

namespace fs = std::filesystem;

namespace {
// The script: beside the executable (copied there by the build), else in the
// source tree this binary was built from.
std::string script_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = exe.parent_path() / "simclr_report.py";
    if (fs::exists(beside)) return beside.string();
  }
  const fs::path src = fs::path(SIMCLR_SOURCE_DIR) / "tools" / "report" / "simclr_report.py";
  SIMCLR_CHECK(fs::exists(src), "simclr report: its script simclr_report.py is neither beside the executable nor at ",
               src.string(), " (rebuild, or run it from the source tree)");
  return src.string();
}

// Debian's interpreter (with Debian's matplotlib), unless SIMCLR_PYTHON names another.
std::string python() {
  if (const char* p = std::getenv("SIMCLR_PYTHON"); p && *p) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

int run(const std::vector<std::string>& args, bool quiet) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int e = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  SIMCLR_CHECK(e == 0, "simclr report: cannot start the Python interpreter '", args[0], "' (", std::strerror(e),
               "): install python3 and python3-matplotlib (./setup.sh does), or set SIMCLR_PYTHON");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    SIMCLR_CHECK(errno == EINTR, "simclr report: waitpid failed: ", std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
}  // namespace

int cmd_report(int argc, char** argv) {
  std::vector<std::string> args = {python(), script_path()};
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: simclr report RUN_DIR [--out DIR]\n"
                  "  plots (loss, learning rate, views/s, input wait, accuracy, baselines) and report.md\n"
                  "  from RUN_DIR/metrics.jsonl; needs python3-matplotlib\n");
      return 0;
    }
    args.push_back(a);
  }
  SIMCLR_CHECK(args.size() >= 3, "simclr report: give a run directory (usage: simclr report RUN_DIR [--out DIR])");
  return run(args, false);
}

std::string write_report_quietly(const std::string& run_dir, std::string* why) {
  try {
    const int rc = run({python(), script_path(), run_dir}, true);
    if (rc == 0) return (fs::path(run_dir) / "report.md").string();
    *why = rc == 3 ? "matplotlib is missing (apt-get install python3-matplotlib)"
                   : "simclr report exited " + std::to_string(rc) + " (run it by hand to see why)";
  } catch (const std::exception& e) {
    *why = e.what();
  }
  return "";
}

}  // namespace simclr
