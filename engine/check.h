// engine/check.h - one error type and one family of check macros.
//
// Every user-facing failure (bad config, bad file, shape mismatch, unsupported
// dtype) throws simclr::Error with a message that names the problem. Tools
// catch it in main(), print "error: <message>" and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace simclr {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}
}  // namespace detail

// Throws simclr::Error built from the streamed arguments.
template <class... A>
[[noreturn]] void fail(const A&... a) {
  throw Error(detail::cat(a...));
}

// The kernel's name from the text of a launch's arguments, for messages:
// "kernel<float, 4>, grid, block, ..." -> "kernel<float, 4>" (the real
// launcher in kernels/cuda/common.cuh and the emulator both use it).
inline std::string launch_kernel_name(const char* text) {
  std::string s;
  int depth = 0;
  for (const char* p = text; *p; ++p) {
    char c = *p;
    if (c == '<' || c == '(' || c == '[') ++depth;
    if (c == '>' || c == ')' || c == ']') --depth;
    if (c == ',' && depth == 0) break;
    s += c;
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

}  // namespace simclr

// SIMCLR_CHECK(cond, "what", value, ...): throws simclr::Error naming the
// message (no file/line: these are user-facing).
#define SIMCLR_CHECK(cond, ...)                                   \
  do {                                                            \
    if (!(cond)) ::simclr::fail(__VA_ARGS__);                     \
  } while (0)

// SIMCLR_ASSERT(cond): an internal invariant; names file and line.
#define SIMCLR_ASSERT(cond)                                                        \
  do {                                                                             \
    if (!(cond))                                                                   \
      ::simclr::fail("internal error: ", #cond, " (", __FILE__, ":", __LINE__, ")"); \
  } while (0)
