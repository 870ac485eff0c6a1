// train/memory.h - the host memory a training run will need, estimated before
// its first step, against the memory this process may use (issue 16, item 7).
//
// The estimate (docs/checkpoint.md, "Memory"):
//   parameters + gradients + BN buffers + optimiser state: from the model's
//     shapes alone (the ParamStore's registered shapes, nothing allocated) and
//     the optimiser's state count (LARS, SGD: 1 buffer, AdamW: 2);
//   activations and workspace of one step: measured on a throw-away copy of the
//     model on the CPU, three tiny steps (2 images at S0 = 16 and 32 pixels, 4
//     images at 16), peak bytes of the CPU allocator above the live bytes; fitted
//     as a + B * (h + q * S^2) and evaluated at the run's batch and image size;
//   the loader's batches in flight: (prefetch + workers + 1) batches of 2B views;
//   times 1.15 (allocations outside the tensor allocator: BLAS and OpenMP scratch,
//     the dataset's decode buffers, the allocator's rounding).
// Available: MemAvailable of /proc/meminfo, and the cgroup's memory.max minus
// memory.current when a limit is set (cgroup v2; v1's limit_in_bytes too).
#pragma once
#include <cstdint>
#include <string>

#include "train/run_config.h"

namespace simclr {

struct MemoryEstimate {
  double params = 0;       // values + gradients + buffers, bytes
  double optimizer = 0;    // optimiser state
  double activations = 0;  // one step at the run's (per-rank) batch and image size, with the fixed workspace
  double loader = 0;       // batches in flight
  double total = 0;        // (sum) x 1.15
  double per_image = 0;    // activation bytes per image of the batch (both views), margin included
  double fixed = 0;        // everything that does not grow with the batch, margin included
  double per_image_fixed = 0, per_pixel = 0;  // per_image = per_image_fixed + per_pixel * S^2 (margin included)
  int64_t batch = 0;       // images per step on this rank
  bool measured = false;   // activations measured (false: parameters alone were too large to try)
};

// The estimate for cfg's training on the CPU (or the emulated device), `batch`
// images per step on this process.
MemoryEstimate estimate_train_memory(const RunConfig& cfg, int64_t batch);

struct AvailableMemory {
  double bytes = 0;    // < 0: unknown
  std::string source;  // "MemAvailable", "cgroup memory.max", ...
};
AvailableMemory available_memory();

// Refuses (simclr::Error) a run whose estimate exceeds the available memory,
// with the estimate, its parts and what to change. SIMCLR_NO_MEMORY_CHECK=1
// skips the check. Returns a note to print when the estimate is above 80% of it
// ("" otherwise).
std::string check_train_memory(const RunConfig& cfg, int64_t batch);

std::string fmt_bytes(double bytes);

}  // namespace simclr
