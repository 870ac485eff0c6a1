// tests/skip.h - how a test that cannot run leaves: it prints
// "SKIPPED: <reason>" and returns. tests/CMakeLists.txt gives every ctest
// entry SKIP_REGULAR_EXPRESSION "SKIPPED:", so ctest reports it as skipped
// in its summary, never as passed.
#pragma once
#include <cstdio>
#include <string>

#include "engine/device.h"

// Leaves the test (skipped) with the reason; `reason` is anything streamable
// into a std::string by concatenation (a std::string or a C string).
#define SIMCLR_SKIP(reason)                                              \
  do {                                                                   \
    std::printf("SKIPPED: %s\n", std::string(reason).c_str());           \
    std::fflush(stdout);                                                 \
    return;                                                              \
  } while (0)

#define SKIP_WITHOUT_GPU()                                               \
  do {                                                                   \
    if (!simclr::cuda_available()) SIMCLR_SKIP(simclr::cuda_unavailable_reason()); \
  } while (0)
