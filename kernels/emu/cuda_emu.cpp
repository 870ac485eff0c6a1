// kernels/emu/cuda_emu.cpp - the kernel emulator: fibers, scheduling, barriers,
// warp collectives, shared memory, checks, and the runtime API on host
// memory. Design notes in kernels/emu/cuda_emu.h and docs/emulator.md.
//
// One launch = blocks run one after another on the calling OS thread. The
// threads of a block are fibers on Boost.Context's fcontext (make_fcontext /
// jump_fcontext: no system call per switch), each with its own mmap'd stack
// (guard page below), taken from a pool reused across blocks and launches.
// The scheduler (on the caller's stack) resumes runnable threads in the
// chosen order until each blocks (barrier / collective) or exits; a pass in
// which nothing can run while threads remain is a deadlock.
#include "kernels/emu/cuda_emu.h"
#include "engine/async.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <ostream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SIMCLR_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMCLR_EMU_ASAN 1
#endif
#endif
#ifdef SIMCLR_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace simclr::emu {

namespace ctx = boost::context::detail;
using ::simclr::detail::cat;

// ============================================================ configuration
namespace {
std::atomic<int> g_order{-1};  // -1: not read from the environment yet
std::atomic<uint64_t> g_seed{0};

void read_env_order() {
  const char* e = std::getenv("EMU_ORDER");
  Order o = Order::forward;
  uint64_t seed = 0;
  if (e && *e) {
    std::string s = e;
    if (s == "forward") {
      o = Order::forward;
    } else if (s == "reverse") {
      o = Order::reverse;
    } else if (s.rfind("seeded", 0) == 0) {
      o = Order::seeded;
      if (s.size() > 7 && s[6] == ':') seed = std::strtoull(s.c_str() + 7, nullptr, 10);
      else if (s.size() != 6) fail("EMU_ORDER='", s, "': expected forward, reverse, seeded or seeded:<number>");
    } else {
      fail("EMU_ORDER='", s, "': expected forward, reverse, seeded or seeded:<number>");
    }
  }
  g_seed = seed;
  g_order = static_cast<int>(o);
}

Stats t_stats;  // (globals below: guarded by g_launch_mu while a launch runs)
}  // namespace

void set_order(Order order, uint64_t seed) {
  g_seed = seed;
  g_order = static_cast<int>(order);
}
void reset_order_from_env() { read_env_order(); }
Order current_order() {
  if (g_order.load() < 0) read_env_order();
  return static_cast<Order>(g_order.load());
}
const char* order_name(Order order) {
  switch (order) {
    case Order::forward: return "forward";
    case Order::reverse: return "reverse";
    case Order::seeded: return "seeded";
  }
  return "?";
}
Stats stats() { return t_stats; }

// ============================================================ per-kernel attributes
namespace {
struct KernelAttrs {
  size_t max_dynamic = 0;  // 0: not set (the 48 KiB default applies)
  size_t static_shared = 0;
};
std::mutex g_attr_mu;
std::unordered_map<const void*, KernelAttrs>& kernel_attrs() {
  static std::unordered_map<const void*, KernelAttrs> m;
  return m;
}
}  // namespace

size_t max_dynamic_shared_bytes(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_attr_mu);
  auto it = kernel_attrs().find(kernel);
  return it == kernel_attrs().end() ? 0 : it->second.max_dynamic;
}

// ============================================================ fiber stacks
namespace {
#ifdef SIMCLR_EMU_ASAN
constexpr size_t kStackBytes = 256 * 1024;
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif

struct Stack {
  void* map = nullptr;     // mmap'd region (guard page first)
  size_t map_bytes = 0;
  char* bottom = nullptr;  // lowest usable byte
  size_t size = 0;         // usable bytes
};

struct StackPool {
  std::deque<Stack> stacks;  // deque: references stay valid as it grows
  ~StackPool() {
    for (Stack& s : stacks) munmap(s.map, s.map_bytes);
  }
  Stack& get(size_t i) {
    while (stacks.size() <= i) {
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      Stack s;
      s.map_bytes = kStackBytes + page;
      s.map = mmap(nullptr, s.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (s.map == MAP_FAILED) fail("emulator: cannot map a ", kStackBytes, "-byte fiber stack");
      mprotect(s.map, page, PROT_NONE);  // overflow runs into the guard page
      s.bottom = static_cast<char*>(s.map) + page;
      s.size = kStackBytes;
      stacks.push_back(s);
    }
    return stacks[i];
  }
};
StackPool t_stacks;
}  // namespace

// ============================================================ block and thread state
namespace {
enum class TState : uint8_t { runnable, at_barrier, at_collective, done, abandoned };

struct Copy {
  void* dst;
  const void* src;
  int src_bytes, total_bytes, group;
};

struct Collective {
  const char* kind = nullptr;
  unsigned mask = 0, arrived = 0;
  int readers = 0;
  size_t bytes = 0;
  const char* file = nullptr;
  int line = 0;
  alignas(16) unsigned char in[32][detail::kSlotBytes];
  alignas(16) unsigned char out[32][detail::kSlotBytes];
};

struct Thread {
  detail::Ids ids;
  int linear = 0, warp = 0, lane = 0;
  TState state = TState::runnable;
  ctx::fcontext_t fctx = nullptr;
  Stack* stack = nullptr;
  const char* wait_kind = nullptr;
  const char* wait_file = nullptr;
  int wait_line = 0;
  std::vector<Copy> copies;
  int next_group = 0;
  void* asan_fake = nullptr;
};

struct Warp {
  std::vector<Collective*> open;  // collectives still waiting for lanes
  unsigned existing = 0, exited = 0;
};

struct Launch {
  // what was launched
  const detail::LaunchSite* site = nullptr;
  std::string kernel;
  const void* kernel_id = nullptr;
  dim3 grid, block;
  size_t shared_bytes = 0;
  bool barrier_free = false;
  detail::Thunk thunk = nullptr;
  void* thunk_ctx = nullptr;
  // the running block
  uint3 block_idx{0, 0, 0};
  int n_threads = 0, n_done = 0, n_exited = 0;
  int n_at_barrier = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  unsigned bar_phase = 0;
  int bar_acc[2] = {0, 0};
  std::vector<Thread> threads;
  std::vector<int> order;
  std::vector<Warp> warps;
  std::vector<std::unique_ptr<Collective>> owned;  // every collective of this launch
  std::vector<Collective*> pool;                    // the free ones
  Thread* cur = nullptr;
  // dynamic shared memory: [guard | bytes | guard]
  unsigned char* smem_alloc = nullptr;
  unsigned char* smem = nullptr;
  size_t smem_padded = 0;
  // the first error
  bool failed = false;
  std::string error;

  Collective* take_collective() {
    if (pool.empty()) {
      owned.push_back(std::make_unique<Collective>());
      return owned.back().get();
    }
    Collective* c = pool.back();
    pool.pop_back();
    return c;
  }
  void give_collective(Collective* c) { pool.push_back(c); }
};

// One launch at a time per process: static __shared__ storage, the stack pool
// and these globals belong to it.
std::mutex g_launch_mu;
std::atomic<std::thread::id> g_launch_owner{};
Launch* t_launch = nullptr;
ctx::fcontext_t t_sched = nullptr;  // the scheduler's context while a fiber runs
#ifdef SIMCLR_EMU_ASAN
const void* t_sched_bottom = nullptr;
size_t t_sched_size = 0;
#endif

constexpr size_t kGuard = 64;
constexpr unsigned char kGuardByte = 0xA5;

// Fixed-size strings for messages built in device code: an error abandons the
// fiber, so no heap temporary may be alive in its frames at that moment.
struct Small {
  char s[136];
};
std::ostream& operator<<(std::ostream& os, const Small& x) { return os << x.s; }
Small dim_str(uint3 v) {
  Small r;
  std::snprintf(r.s, sizeof r.s, "(%u,%u,%u)", v.x, v.y, v.z);
  return r;
}
Small dim_str(dim3 v) { return dim_str(uint3{v.x, v.y, v.z}); }
Small mask_str(unsigned m) {
  Small r;
  std::snprintf(r.s, sizeof r.s, "0x%08x", m);
  return r;
}
Small lanes_str(unsigned m) {
  Small r;
  size_t n = 0;
  r.s[n++] = '{';
  for (int l = 0; l < 32; ++l)
    if (m >> l & 1u) n += static_cast<size_t>(std::snprintf(r.s + n, sizeof r.s - n, n > 1 ? ",%d" : "%d", l));
  std::snprintf(r.s + n, sizeof r.s - n, "}");
  return r;
}

std::string where(const Launch& L) {
  return cat("emulated kernel ", L.kernel, " (launched at ", L.site->file, ":", L.site->line, ")");
}
std::string where(const Launch& L, const Thread& t) {
  return cat(where(L), ", block ", dim_str(L.block_idx), ", thread ", dim_str(t.ids.thread_idx));
}

Launch& running(const char* what) {
  if (!t_launch || !t_launch->cur) fail("emulator: ", what, " called outside an emulated kernel");
  return *t_launch;
}

// ---- context switches (annotated for ASan)
void switch_to_fiber(Launch& L, Thread& t) {
  L.cur = &t;
  detail::t_ids = &t.ids;
#ifdef SIMCLR_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t.stack->bottom, t.stack->size);
#endif
  ctx::transfer_t r = ctx::jump_fcontext(t.fctx, &t);
#ifdef SIMCLR_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  t.fctx = r.fctx;
  ++t_stats.switches;
}

// From a fiber back to the scheduler; returns when resumed.
void yield_to_scheduler(Thread& t) {
#ifdef SIMCLR_EMU_ASAN
  __sanitizer_start_switch_fiber(&t.asan_fake, t_sched_bottom, t_sched_size);
#endif
  ctx::transfer_t r = ctx::jump_fcontext(t_sched, nullptr);
#ifdef SIMCLR_EMU_ASAN
  __sanitizer_finish_switch_fiber(t.asan_fake, &t_sched_bottom, &t_sched_size);
#endif
  t_sched = r.fctx;
#ifndef SIMCLR_EMU_ASAN
  (void)t;
#endif
}

// From a fiber to the scheduler for good (the thread finished or failed).
[[noreturn]] void leave_fiber() {
#ifdef SIMCLR_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, t_sched_bottom, t_sched_size);
#endif
  ctx::jump_fcontext(t_sched, nullptr);
  __builtin_unreachable();
}

void complete_copies(Thread& t, int below_group) {
  size_t keep = 0;
  for (size_t i = 0; i < t.copies.size(); ++i) {
    Copy& c = t.copies[i];
    if (c.group < below_group) {
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
      if (c.total_bytes > c.src_bytes)
        std::memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, static_cast<size_t>(c.total_bytes - c.src_bytes));
    } else {
      t.copies[keep++] = c;
    }
  }
  t.copies.resize(keep);
}

// Checks when a thread of a fiber launch exits; may fail.
void on_thread_exit(Launch& L, Thread& t) {
  complete_copies(t, 1 << 30);
  t.state = TState::done;
  ++L.n_done;
  ++L.n_exited;
  Warp& w = L.warps[t.warp];
  w.exited |= 1u << t.lane;
  if (L.n_at_barrier > 0)
    detail::device_fail(nullptr, 0, "divergent barrier: this thread exited while ", L.n_at_barrier, " of ",
                        L.n_threads, " threads wait at __syncthreads (", L.bar_file, ":", L.bar_line, ")");
  for (Collective* c : w.open)
    if (c->mask >> t.lane & 1u)
      detail::device_fail(nullptr, 0, "warp collective with a missing lane: lane ", t.lane, " exited while lanes ",
                          lanes_str(c->arrived), " of warp ", t.warp, " wait in ", c->kind, " (mask ",
                          mask_str(c->mask), ") at ", c->file, ":", c->line);
}

void fiber_main(ctx::transfer_t tr) {
#ifdef SIMCLR_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &t_sched_bottom, &t_sched_size);
#endif
  t_sched = tr.fctx;
  Thread& t = *static_cast<Thread*>(tr.data);
  Launch& L = *t_launch;
  bool threw = false;
  {
    std::string msg;
    try {
      L.thunk(L.thunk_ctx);
    } catch (const std::exception& e) {
      msg = e.what();
      threw = true;
    } catch (...) {
      msg = "unknown exception";
      threw = true;
    }
    if (threw) detail::record_device_error(nullptr, 0, cat("exception in kernel code: ", msg));
  }
  if (threw) detail::abandon_thread();
  on_thread_exit(L, t);
  leave_fiber();
}

void init_dynamic_smem(Launch& L) {
  if (!L.smem_alloc) return;
#ifdef SIMCLR_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(L.smem_alloc, L.smem_padded + 2 * kGuard);
#endif
  std::memset(L.smem_alloc, kGuardByte, kGuard);
  std::memset(L.smem, 0xFF, L.smem_padded);
  std::memset(L.smem + L.smem_padded, kGuardByte, kGuard);
#ifdef SIMCLR_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(L.smem_alloc, kGuard);
  ASAN_POISON_MEMORY_REGION(L.smem + L.shared_bytes, L.smem_padded - L.shared_bytes + kGuard);
#endif
}

void check_dynamic_smem_guards(Launch& L) {
#ifndef SIMCLR_EMU_ASAN  // under ASan the guards are poisoned and ASan reports the access itself
  if (!L.smem_alloc) return;
  for (size_t i = 0; i < kGuard; ++i)
    if (L.smem_alloc[i] != kGuardByte)
      fail(where(L), ", block ", dim_str(L.block_idx), ": out-of-bounds write to dynamic shared memory: byte ",
           static_cast<long long>(i) - static_cast<long long>(kGuard), " before its start (", L.shared_bytes,
           " bytes launched)");
  for (size_t i = L.shared_bytes; i < L.smem_padded + kGuard; ++i)
    if (L.smem[i] != (i < L.smem_padded ? 0xFF : kGuardByte))
      fail(where(L), ", block ", dim_str(L.block_idx), ": out-of-bounds write to dynamic shared memory at byte ", i,
           " (", L.shared_bytes, " bytes launched)");
#else
  (void)L;
#endif
}

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void make_order(Launch& L, Order order, uint64_t seed, uint64_t block_linear) {
  const int n = L.n_threads;
  L.order.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) L.order[static_cast<size_t>(i)] = order == Order::reverse ? n - 1 - i : i;
  if (order == Order::seeded) {
    uint64_t s = seed * 0x2545f4914f6cdd1dull + block_linear + 1;
    for (int i = n - 1; i > 0; --i) std::swap(L.order[static_cast<size_t>(i)], L.order[splitmix(s) % static_cast<uint64_t>(i + 1)]);
  }
}

std::string deadlock_report(Launch& L) {
  std::string s = cat(where(L), ", block ", dim_str(L.block_idx), ": deadlock, no thread can run:");
  for (const Thread& t : L.threads)
    if (t.state == TState::at_barrier || t.state == TState::at_collective) {
      s += cat(" thread ", dim_str(t.ids.thread_idx), " waits in ", t.wait_kind, " at ", t.wait_file, ":", t.wait_line,
               ";");
      break;
    }
  if (L.n_at_barrier > 0)
    s += cat(" ", L.n_at_barrier, " of ", L.n_threads, " threads wait at __syncthreads (", L.bar_file, ":", L.bar_line,
             ");");
  for (size_t w = 0; w < L.warps.size(); ++w)
    for (Collective* c : L.warps[w].open)
      s += cat(" warp ", w, ": lanes ", lanes_str(c->arrived), " wait in ", c->kind, " (mask ", mask_str(c->mask),
               ") at ", c->file, ":", c->line, " for lanes ", lanes_str(c->mask & ~c->arrived), ";");
  return s;
}

void check_static_shared(Launch& L) {
  size_t st = 0, dyn_max = 0;
  {
    std::lock_guard<std::mutex> lock(g_attr_mu);
    const KernelAttrs& a = kernel_attrs()[L.kernel_id];
    st = a.static_shared;
    dyn_max = a.max_dynamic;
  }
  if (st > kDefaultSharedBytes)
    fail(where(L), ": ", st, " bytes of static shared memory (SIMCLR_SHARED); the limit is 48 KiB");
  const size_t limit = dyn_max ? dyn_max : kDefaultSharedBytes - st;
  if (L.shared_bytes > limit) {
    if (dyn_max)
      fail(where(L), ": ", L.shared_bytes, " bytes of dynamic shared memory requested, but cudaFuncSetAttribute(",
           "cudaFuncAttributeMaxDynamicSharedMemorySize) allowed ", dyn_max);
    fail(where(L), ": ", L.shared_bytes, " bytes of dynamic shared memory (+", st,
         " static) exceed the 48 KiB allowed without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)");
  }
  if (st + L.shared_bytes > kMaxSharedBytesOptin)
    fail(where(L), ": ", st + L.shared_bytes, " bytes of shared memory per block exceed the sm_90 limit of ",
         kMaxSharedBytesOptin);
}

void check_launch_config(Launch& L) {
  const dim3 b = L.block, g = L.grid;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0)
    fail(where(L), ": invalid launch configuration: grid ", dim_str(g), ", block ", dim_str(b),
         " (every dimension must be at least 1)");
  if (b.x > 1024 || b.y > 1024 || b.z > static_cast<unsigned>(kMaxBlockDimZ) ||
      threads > static_cast<uint64_t>(kMaxThreadsPerBlock))
    fail(where(L), ": invalid launch configuration: block ", dim_str(b), " has ", threads,
         " threads; sm_80/sm_90 allow at most 1024 per block (x, y <= 1024, z <= 64)");
  if (g.x > 2147483647u || g.y > 65535u || g.z > 65535u)
    fail(where(L), ": invalid launch configuration: grid ", dim_str(g), " exceeds (2^31-1, 65535, 65535)");
  check_static_shared(L);
}

void run_block_loop(Launch& L, Order order, uint64_t seed, uint64_t block_linear) {
  make_order(L, order, seed, block_linear);
  Thread& t = L.threads[0];
  for (int idx : L.order) {
    t.ids.thread_idx = {static_cast<unsigned>(idx) % L.block.x, (static_cast<unsigned>(idx) / L.block.x) % L.block.y,
                        static_cast<unsigned>(idx) / (L.block.x * L.block.y)};
    t.linear = idx;
    t.warp = t.ids.warp = idx / 32;
    t.lane = t.ids.lane = idx % 32;
    t.copies.clear();
    t.next_group = 0;
    L.cur = &t;
    detail::t_ids = &t.ids;
    L.thunk(L.thunk_ctx);
    complete_copies(t, 1 << 30);
  }
}

void run_block_fibers(Launch& L, Order order, uint64_t seed, uint64_t block_linear) {
  const int n = L.n_threads;
  make_order(L, order, seed, block_linear);
  L.n_done = L.n_exited = L.n_at_barrier = 0;
  L.bar_phase = 0;
  for (Warp& w : L.warps) {
    for (Collective* c : w.open) L.give_collective(c);
    w.open.clear();
    w.exited = 0;
  }
  for (int i = 0; i < n; ++i) {
    Thread& t = L.threads[static_cast<size_t>(i)];
    t.state = TState::runnable;
    t.copies.clear();
    t.next_group = 0;
    t.fctx = ctx::make_fcontext(t.stack->bottom + t.stack->size, t.stack->size, fiber_main);
  }
  while (L.n_done < n) {
    bool ran = false;
    for (int idx : L.order) {
      Thread& t = L.threads[static_cast<size_t>(idx)];
      if (t.state != TState::runnable) continue;
      switch_to_fiber(L, t);
      ran = true;
      if (L.failed) return;
    }
    if (!ran) {
      L.failed = true;
      L.error = deadlock_report(L);
      return;
    }
  }
}

void unpoison_stacks(Launch& L) {
#ifdef SIMCLR_EMU_ASAN
  for (Thread& t : L.threads)
    if (t.stack) ASAN_UNPOISON_MEMORY_REGION(t.stack->bottom, t.stack->size);
#else
  (void)L;
#endif
}
}  // namespace

// ============================================================ device-side entry points
namespace detail {
const Ids* t_ids = nullptr;
uint64_t t_block_epoch = 0;

void record_device_error(const char* file, int line, const std::string& what) {
  Launch& L = running("a device check");
  std::string msg = cat(where(L, *L.cur), ": ", what);
  if (file) msg += cat(" (at ", file, ":", line, ")");
  if (L.barrier_free) throw Error(msg);  // plain loop: ordinary exception
  if (!L.failed) {
    L.failed = true;
    L.error = std::move(msg);
  }
}

void abandon_thread() {
  Launch& L = running("a device check");
  if (L.barrier_free) fail(where(L, *L.cur), ": device error");  // not reached: record_device_error threw
  L.cur->state = TState::abandoned;
  leave_fiber();
}

void syncthreads(const char* file, int line) {
  Launch& L = running("__syncthreads");
  Thread& t = *L.cur;
  if (L.barrier_free)
    device_fail(file, line, "__syncthreads in a kernel launched with launch_nobarrier (use launch)");
  ++t_stats.barriers;
  if (L.n_exited > 0)
    device_fail(file, line, "divergent barrier: __syncthreads reached after ", L.n_exited, " of ", L.n_threads,
                " threads of the block exited");
  if (L.n_at_barrier == 0) {
    L.bar_file = file;
    L.bar_line = line;
  } else if (L.bar_line != line || std::strcmp(L.bar_file, file) != 0) {
    device_fail(file, line, "divergent barrier: this __syncthreads is not the one ", L.n_at_barrier,
                " other threads wait at (", L.bar_file, ":", L.bar_line, ")");
  }
  if (++L.n_at_barrier == L.n_threads) {
    for (Thread& o : L.threads)
      if (o.state == TState::at_barrier) o.state = TState::runnable;
    L.n_at_barrier = 0;
    ++L.bar_phase;
    return;
  }
  t.state = TState::at_barrier;
  t.wait_kind = "__syncthreads";
  t.wait_file = file;
  t.wait_line = line;
  yield_to_scheduler(t);
}

int syncthreads_reduce(int op, int pred, const char* file, int line) {
  Launch& L = running("__syncthreads_count/and/or");
  const unsigned phase = L.bar_phase;
  int& acc = L.bar_acc[phase & 1];
  if (L.n_at_barrier == 0) acc = 0;
  acc += pred != 0;
  syncthreads(file, line);
  const int count = L.bar_acc[phase & 1];
  if (op == 0) return count;
  if (op == 1) return count == L.n_threads;
  return count > 0;
}

WarpSlots warp_arrive(const char* kind, unsigned mask, const void* mine, size_t bytes, WarpFn fn, const char* file,
                      int line) {
  Launch& L = running(kind);
  Thread& t = *L.cur;
  if (L.barrier_free) device_fail(file, line, kind, " in a kernel launched with launch_nobarrier (use launch)");
  if (bytes > 64) device_fail(file, line, kind, ": payload of ", bytes, " bytes (at most 64)");
  Warp& w = L.warps[static_cast<size_t>(t.warp)];
  const unsigned me = 1u << t.lane;
  if (!(mask & me))
    device_fail(file, line, kind, " with mask ", mask_str(mask), " called by lane ", t.lane, ", which is not in the mask");
  if (mask & ~w.existing)
    device_fail(file, line, "warp collective with a missing lane: ", kind, " mask ", mask_str(mask), " names lanes ",
                lanes_str(mask & ~w.existing), " that do not exist (block of ", L.n_threads, " threads)");
  if (mask & w.exited)
    device_fail(file, line, "warp collective with a missing lane: ", kind, " mask ", mask_str(mask), " names lanes ",
                lanes_str(mask & w.exited), " that have exited");
  Collective* c = nullptr;
  for (Collective* o : w.open)
    if (o->mask & mask) {
      if (o->mask != mask || (o->kind != kind && std::strcmp(o->kind, kind) != 0))
        device_fail(file, line, "warp collectives disagree: lane ", t.lane, " calls ", kind, " (mask ", mask_str(mask),
                    ") while lanes ", lanes_str(o->arrived), " wait in ", o->kind, " (mask ", mask_str(o->mask),
                    ") at ", o->file, ":", o->line);
      c = o;
      break;
    }
  if (!c) {
    c = L.take_collective();
    c->kind = kind;
    c->mask = mask;
    c->arrived = 0;
    c->bytes = bytes;
    c->file = file;
    c->line = line;
    w.open.push_back(c);
  } else if (c->bytes != bytes) {
    device_fail(file, line, kind, ": lanes disagree on the operand size");
  }
  if (bytes) std::memcpy(c->in[t.lane], mine, bytes);
  c->arrived |= me;
  if (c->arrived == mask) {
    ++t_stats.collectives;
    for (size_t i = 0; i < w.open.size(); ++i)
      if (w.open[i] == c) {
        w.open.erase(w.open.begin() + static_cast<long>(i));
        break;
      }
    c->readers = __builtin_popcount(mask);
    if (fn) fn(&c->in[0][0], &c->out[0][0], mask);
    for (int l = 0; l < 32; ++l)
      if ((mask >> l & 1u) && l != t.lane) L.threads[static_cast<size_t>(t.warp * 32 + l)].state = TState::runnable;
  } else {
    t.state = TState::at_collective;
    t.wait_kind = kind;
    t.wait_file = file;
    t.wait_line = line;
    yield_to_scheduler(t);
  }
  return WarpSlots{&c->in[0][0], &c->out[0][0], c};
}

void warp_done(void* handle) {
  Collective* c = static_cast<Collective*>(handle);
  if (--c->readers == 0) t_launch->give_collective(c);
}


unsigned live_lanes_mask() {
  Launch& L = running("__activemask");
  const Warp& w = L.warps[static_cast<size_t>(L.cur->warp)];
  return w.existing & ~w.exited;
}

unsigned char* dynamic_shared_base(size_t* bytes) {
  Launch& L = running("dynamic shared memory");
  *bytes = L.shared_bytes;
  return L.smem;
}

void register_shared_array(const char* name, size_t bytes, const char* file, int line) {
  (void)name;
  (void)file;
  (void)line;
  if (!t_launch) return;
  std::lock_guard<std::mutex> lock(g_attr_mu);
  kernel_attrs()[t_launch->kernel_id].static_shared += bytes;
}

void shared_oob(const char* name, const char* file, int line, long long index, size_t extent) {
  if (file)
    device_fail(nullptr, 0, "out-of-bounds shared memory access: index ", index, " of ", name, "[", extent,
                "] (declared at ", file, ":", line, ")");
  device_fail(nullptr, 0, "out-of-bounds shared memory access: index ", index, " of ", name, " (", extent,
              " elements from there to the end of the launch's ", t_launch ? t_launch->shared_bytes : 0,
              " bytes of dynamic shared memory)");
}

void cp_async(void* dst, const void* src, int src_bytes, int total_bytes, const char* file, int line) {
  Launch& L = running("cp.async");
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % 16 != 0))
    device_fail(file, line, "cp.async: shared and global addresses must be 16-byte aligned");
  if (src_bytes < 0 || src_bytes > total_bytes)
    device_fail(file, line, "cp.async: src_bytes ", src_bytes, " outside [0, ", total_bytes, "]");
  Thread& t = *L.cur;
  t.copies.push_back(Copy{dst, src, src_bytes, total_bytes, t.next_group});
}

void cp_async_commit() { ++running("cp.async.commit_group").cur->next_group; }

void cp_async_wait(int keep_pending) {
  Thread& t = *running("cp.async.wait_group").cur;
  complete_copies(t, t.next_group - keep_pending);
}

}  // namespace detail

// ============================================================ the launch
void detail::run_launch(const LaunchSite& site, const void* kernel_id, dim3 grid, dim3 block, size_t shared_bytes,
                        bool barrier_free, Thunk thunk, void* thunk_ctx) {
  if (g_launch_owner.load() == std::this_thread::get_id())
    fail("emulator: kernel launch from inside an emulated kernel (", site.file, ":", site.line, ")");
  std::lock_guard<std::mutex> launch_lock(g_launch_mu);
  g_launch_owner = std::this_thread::get_id();
  struct Owner {
    ~Owner() { g_launch_owner = std::thread::id(); }
  } owner;
  Launch L;
  L.site = &site;
  L.kernel = launch_kernel_name(site.text);
  L.kernel_id = kernel_id;
  L.grid = grid;
  L.block = block;
  L.shared_bytes = shared_bytes;
  L.barrier_free = barrier_free;
  L.thunk = thunk;
  L.thunk_ctx = thunk_ctx;
  check_launch_config(L);

  const Order order = current_order();
  const uint64_t seed = g_seed.load();
  L.n_threads = static_cast<int>(block.x * block.y * block.z);
  const int n = L.n_threads;
  if (barrier_free) {
    L.threads.resize(1);
  } else {
    L.threads.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      Thread& t = L.threads[static_cast<size_t>(i)];
      t.linear = i;
      t.warp = t.ids.warp = i / 32;
      t.lane = t.ids.lane = i % 32;
      t.ids.thread_idx = {static_cast<unsigned>(i) % block.x, (static_cast<unsigned>(i) / block.x) % block.y,
                          static_cast<unsigned>(i) / (block.x * block.y)};
      t.stack = &t_stacks.get(static_cast<size_t>(i));
    }
    L.warps.resize(static_cast<size_t>((n + 31) / 32));
    for (size_t w = 0; w < L.warps.size(); ++w) {
      const int lanes = std::min(32, n - static_cast<int>(w) * 32);
      L.warps[w].existing = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    }
  }
  for (Thread& t : L.threads) {
    t.ids.block_dim = block;
    t.ids.grid_dim = grid;
  }
  if (shared_bytes > 0) {
    L.smem_padded = (shared_bytes + 15) / 16 * 16;
    L.smem_alloc = static_cast<unsigned char*>(std::aligned_alloc(128, (L.smem_padded + 2 * kGuard + 127) / 128 * 128));
    L.smem = L.smem_alloc + kGuard;
  }
  ++t_stats.launches;

  t_launch = &L;
  std::string error;
  try {
    uint64_t b = 0;
    for (unsigned bz = 0; bz < grid.z && !L.failed; ++bz)
      for (unsigned by = 0; by < grid.y && !L.failed; ++by)
        for (unsigned bx = 0; bx < grid.x && !L.failed; ++bx, ++b) {
          L.block_idx = {bx, by, bz};
          for (Thread& t : L.threads) t.ids.block_idx = L.block_idx;
          ++detail::t_block_epoch;
          init_dynamic_smem(L);
          if (barrier_free) run_block_loop(L, order, seed, b);
          else run_block_fibers(L, order, seed, b);
          if (!L.failed) check_dynamic_smem_guards(L);
          if (b == 0 && !L.failed) check_static_shared(L);  // SIMCLR_SHARED arrays register on first use
          ++t_stats.blocks;
          t_stats.threads += static_cast<uint64_t>(n);
        }
    if (L.failed) error = L.error;
  } catch (const std::exception& e) {
    error = e.what();
  }
  t_launch = nullptr;
  detail::t_ids = nullptr;
  if (L.smem_alloc) {
#ifdef SIMCLR_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(L.smem_alloc, L.smem_padded + 2 * kGuard);
#endif
    std::free(L.smem_alloc);
  }
  if (!error.empty()) {
    unpoison_stacks(L);  // abandoned fibers leave poisoned frames behind
    throw Error(error);
  }
}

// ============================================================ runtime API on host memory
namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
std::mutex g_mem_mu;
std::unordered_map<void*, size_t>& allocations() {
  static std::unordered_map<void*, size_t> m;
  return m;
}
struct EmuEvent {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};
std::unordered_set<void*>& handles() {
  static std::unordered_set<void*> s;
  return s;
}
cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}
}  // namespace

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return "unknown error (emulated)";
  }
}
cudaError_t cudaGetLastError() {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last_error; }

// A host-synchronous call inside a capture (engine/async.h): breaks it, as on a GPU.
static bool forbidden_in_capture(const char* call) {
  return ::simclr::detail::emu_capture_forbid(std::string("the host-synchronous ") + call);
}
#define SIMCLR_EMU_NOT_IN_CAPTURE(call) \
  if (forbidden_in_capture(call)) return set_error(cudaErrorStreamCaptureUnsupported)

static cudaError_t emu_malloc(void** p, size_t bytes) {
  if (!p) return set_error(cudaErrorInvalidValue);
  const size_t padded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  void* q = std::aligned_alloc(256, padded);
  if (!q) return set_error(cudaErrorMemoryAllocation);
  std::memset(q, 0xFF, padded);  // device memory starts as garbage: make it NaN
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    allocations()[q] = bytes;
  }
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaMalloc");
  return emu_malloc(p, bytes);
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  const cudaError_t e = emu_malloc(p, bytes);
  if (e == cudaSuccess) ::simclr::detail::emu_capture_alloc(*p, bytes);
  return e;
}
static cudaError_t emu_free(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (allocations().erase(p) == 0) return set_error(cudaErrorInvalidDevicePointer);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaFree");
  return emu_free(p);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  if (p && ::simclr::detail::emu_capture_free(p, [p] { emu_free(p); })) return cudaSuccess;
  return emu_free(p);
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaMemcpy");
  if (bytes && (!dst || !src)) return set_error(cudaErrorInvalidValue);
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  if (bytes && (!dst || !src)) return set_error(cudaErrorInvalidValue);
  if (bytes && !::simclr::detail::emu_capture_record([=] { std::memmove(dst, src, bytes); }))
    std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaMemset");
  if (bytes && !p) return set_error(cudaErrorInvalidValue);
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes && !p) return set_error(cudaErrorInvalidValue);
  if (bytes && !::simclr::detail::emu_capture_record([=] { std::memset(p, value, bytes); }))
    std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  if (!s) return set_error(cudaErrorInvalidValue);
  void* h = new unsigned char[1];
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    handles().insert(h);
  }
  *s = static_cast<cudaStream_t>(h);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  void* h = static_cast<void*>(s);
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (handles().erase(h) == 0) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete[] static_cast<unsigned char*>(h);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaStreamSynchronize");
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaDeviceSynchronize");
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (!e) return set_error(cudaErrorInvalidValue);
  EmuEvent* ev = new EmuEvent;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    handles().insert(ev);
  }
  *e = reinterpret_cast<cudaEvent_t>(ev);
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  void* h = reinterpret_cast<void*>(e);
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (handles().erase(h) == 0) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete static_cast<EmuEvent*>(h);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (!e) return set_error(cudaErrorInvalidResourceHandle);
  EmuEvent* ev = reinterpret_cast<EmuEvent*>(e);
  ev->t = std::chrono::steady_clock::now();
  ev->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  SIMCLR_EMU_NOT_IN_CAPTURE("cudaEventSynchronize");
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return set_error(cudaErrorInvalidValue);
  EmuEvent* a = reinterpret_cast<EmuEvent*>(start);
  EmuEvent* b = reinterpret_cast<EmuEvent*>(end);
  if (!a->recorded || !b->recorded) return set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return set_error(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

// An H100-like sm_90 device.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = kMaxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = 1024; break;
    case cudaDevAttrMaxBlockDimY: *value = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *value = kMaxBlockDimZ; break;
    case cudaDevAttrMaxGridDimX: *value = 2147483647; break;
    case cudaDevAttrMaxGridDimY: *value = 65535; break;
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(kDefaultSharedBytes); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(kMaxSharedBytesOptin); break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = 228 * 1024; break;
    case cudaDevAttrMultiProcessorCount: *value = kNumSMs; break;
    case cudaDevAttrWarpSize: *value = warpSize; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxRegistersPerBlock: *value = 65536; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; break;
    case cudaDevAttrL2CacheSize: *value = 50 * 1024 * 1024; break;
    default: return set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute_(const void* func, cudaFuncAttribute attr, int value) {
  if (!func) return set_error(cudaErrorInvalidDeviceFunction);
  std::lock_guard<std::mutex> lock(g_attr_mu);
  KernelAttrs& a = kernel_attrs()[func];
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) + a.static_shared > kMaxSharedBytesOptin)
      return set_error(cudaErrorInvalidValue);
    a.max_dynamic = static_cast<size_t>(value);
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
    if (value < -1 || value > 100) return set_error(cudaErrorInvalidValue);
    return cudaSuccess;
  }
  return set_error(cudaErrorInvalidValue);
}

void detail::cuda_fail(const char* call, cudaError_t e, const char* file, int line) {
  fail("CUDA error (emulated): ", cudaGetErrorString(e), " in ", call, " (", file, ":", line, ")");
}

}  // namespace simclr::emu
