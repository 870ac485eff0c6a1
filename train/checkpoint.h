// train/checkpoint.h - training checkpoints: one binary file holding the
// model (parameters and buffers by name), the optimiser state, the schedule
// and loader position, the seed, the resolved config and a metrics summary.
//
// File layout (all integers little endian; docs/checkpoint.md is the spec):
//   [0, 8)     magic "SIMCLRCK"
//   [8, 12)    u32 format version (kCheckpointVersion)
//   [12, 16)   u32 reserved (0)
//   [16, 24)   u64 H = header length in bytes
//   [24, 24+H) header: UTF-8 JSON object (see below)
//   padding with zeros to a multiple of 64 bytes -> data start D
//   tensor blobs, each at D + its "offset" (64-byte aligned), raw row-major
//   last 4 bytes: u32 CRC-32 (zlib polynomial) of every byte before it
// The header holds "meta" (free-form JSON: arch, config, state, metrics, ...)
// and "tensors": [{name, group, dtype, shape, offset, bytes, flags}], where
// group is "model" or "optimizer" and flags lists "trainable", "bn", "bias",
// "buffer", "head". Conv weights are OHWI (our NHWC layout).
//
// Writes are atomic (temp file, fsync, rename). Reading verifies magic,
// version, sizes and the CRC before anything is used; any failure throws
// simclr::Error with a message that starts "checkpoint '<path>': ".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/json_config.h"
#include "engine/param.h"

namespace simclr {

constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointTensor {
  std::string name;
  std::string group;  // "model" or "optimizer"
  uint32_t flags = 0; // ParamFlags (model tensors)
  Tensor tensor;      // CPU
};

struct Checkpoint {
  json meta = json::object();
  std::vector<CheckpointTensor> tensors;

  const CheckpointTensor* find(const std::string& name, const std::string& group = "model") const;
  // Tensors of one group, in file order.
  std::vector<const CheckpointTensor*> group(const std::string& group) const;
};

// Serialise to bytes / parse from bytes (what save/load do around the file).
std::string checkpoint_to_bytes(const Checkpoint& ck);
Checkpoint checkpoint_from_bytes(const std::string& bytes, const std::string& path_for_errors);

// Atomic (temp file, fsync, rename). Test hook: SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS
// (checkpoint.cpp) holds a half-written temporary in place for that long first.
void save_checkpoint(const std::string& path, const Checkpoint& ck);
// Throws simclr::Error "checkpoint '<path>': ..." on a missing, truncated,
// corrupt (CRC), foreign (magic) or newer-version file.
Checkpoint load_checkpoint(const std::string& path);

// Every parameter and buffer of the store (CPU copies), group "model".
void add_model_tensors(Checkpoint& ck, const ParamStore& store);
// Copies the checkpoint's model tensors into the store. Every store entry
// (excluding head entries when skip_head) must be present with the same
// shape, else a clear error naming the first mismatch; extra checkpoint
// tensors are an error too unless they are head tensors and skip_head.
void load_model_tensors(const Checkpoint& ck, ParamStore& store, bool skip_head = false);

// ---- run-directory helpers
// "<dir>/checkpoint-<step 9 digits>.ckpt"
std::string checkpoint_path(const std::string& dir, int64_t step);
// Checkpoint files in dir, sorted by step, oldest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The newest checkpoint in dir that loads and verifies; each one skipped is
// described in `skipped` ("<path>: <reason>"). Returns "" when none is good.
// Reads only (simclr eval); a resume uses choose_resume_checkpoint.
std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped, Checkpoint* out = nullptr);

// A checkpoint that did not verify: the error ("checkpoint '<path>': why")
// and where it was set aside ("<path>.bad"; "" when it could not be renamed).
struct SkippedCheckpoint {
  std::string path, reason, moved_to;
};
// "<reason> (renamed to <name>.bad)" for the console.
std::string describe_set_aside(const SkippedCheckpoint& s);
struct ResumeChoice {
  std::string path;                        // "" when dir holds no checkpoint at all
  std::vector<SkippedCheckpoint> skipped;  // newer ones that did not verify, newest first
};
// For --resume: the newest checkpoint of dir that loads and verifies (into
// *out). Each newer one that does not is renamed to "<name>.bad" - never
// deleted - so that rotation and later resumes cannot pick it again, and
// listed in `skipped` with its reason. When dir holds checkpoints but none
// is usable, throws naming each and why, and changes nothing: restarting
// from step 0 would silently throw the run's progress (and history) away.
ResumeChoice choose_resume_checkpoint(const std::string& dir, Checkpoint* out);

// "" when the file at `path` is a complete, uncorrupted checkpoint (magic,
// version, sizes, CRC-32, header and tensor table, meta.state), else the
// error load_checkpoint would give. Streams the file (no tensors built).
std::string verify_checkpoint_file(const std::string& path);

// Rotation after writing `written` (a checkpoint in dir; "" = the newest
// there): keeps the newest keep_last checkpoints that verify, counting down
// from `written`, and deletes the older ones. A checkpoint in the kept range
// that does not verify is renamed to "<name>.bad" and an older good one is
// kept in its place; one with a higher step than `written` is left alone
// (this run did not write it). Throws when `written` itself does not verify.
// Returns the console notes (one line each, "warning: ..." / "note: ...").
std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last, const std::string& written = "");

// Removes the temporaries an interrupted atomic write of another process
// left in dir ("<name>.tmp.<pid>.<suffix>", engine/fileio.cpp, for the files
// a run writes: checkpoints, config.json, metrics.jsonl*, results.json; a kill -9
// during a checkpoint write leaves one as big as a checkpoint). Call it only
// while holding the directory's DirLock: then no other process is writing
// there. Returns the removed file names.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// meta.state of a training checkpoint, checked: throws "checkpoint '<path>':
// ..." when it is missing or incomplete (e.g. an encoder import).
struct CheckpointRunState {
  int64_t step = 0, steps_per_epoch = 0, total_steps = 0;
  // the running sum of the current epoch's losses and its step count (a
  // mid-epoch checkpoint; 0 at an epoch boundary and in older files)
  double epoch_loss_sum = 0;
  int64_t epoch_loss_steps = 0;
};
CheckpointRunState checkpoint_run_state(const Checkpoint& ck, const std::string& path);

}  // namespace simclr
