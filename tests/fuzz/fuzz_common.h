// tests/fuzz/fuzz_common.h - shared by the libFuzzer targets (tests/fuzz/*.cpp).
// Readers that take a path get the input through a file in a per-process
// scratch folder. A reader may reject any input with simclr::Error (that is
// its contract); anything else - an ASan/UBSan report, another exception, a
// crash, a hang - is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/check.h"

namespace fuzz {

inline const std::string& scratch() {
  static const std::string dir = [] {
    const char* base = std::getenv("FUZZ_TMP");
    std::string d = std::string(base ? base : "/tmp") + "/simclr-fuzz-" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string put(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace fuzz

// Runs `body`; simclr::Error is an accepted rejection.
#define FUZZ_BODY(body)               \
  try {                               \
    body;                             \
  } catch (const simclr::Error&) {    \
  }                                   \
  return 0
