// engine/fileio.h - small file helpers: atomic writes (temp file in the same
// folder, fsync, rename: a reader sees the old file or the new one, never a
// partial one), whole-file reads, CRC-32 for checkpoint checksums.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace simclr {

// Writes `data` to `path` atomically. Throws simclr::Error naming the path on
// any failure and leaves no temporary file behind. `path` must be a regular
// file or not exist: a symbolic link is written through (the file it points
// to is replaced atomically); a directory, FIFO, device node or socket is
// refused with an error (a rename would replace the node itself).
void write_file_atomic(const std::string& path, std::string_view data);

// What an output path ends up writing: `path` itself, or the file a
// symbolic link (chain) at `path` points to. Throws for a directory, FIFO,
// device, socket or a dangling link into a missing folder.
std::string output_target(const std::string& path);

// For a tool's output file: throws simclr::Error "<flag> '<path>' ..." when
// it is (or links to) one of `inputs` (the same file: never overwritten),
// when it is not a regular file (see write_file_atomic), or when it exists
// and `replace_existing` is false (the caller's --force). inputs may hold
// empty strings (ignored) and files that do not exist.
void check_output_path(const std::string& flag, const std::string& path, const std::vector<std::string>& inputs,
                       bool replace_existing);

// Appends `line` to `path` (created when missing) with O_APPEND and checks
// every byte was written; throws simclr::Error naming the path (full disk,
// no permission, ...).
void append_file(const std::string& path, std::string_view line);

// An exclusive lock on a directory for the object's lifetime: flock() on
// "<dir>/.simclr-lock", which records the holder (pid, host, start time).
// The kernel drops the lock when its process dies (also by SIGKILL), so a
// lock file left by a dead process is simply taken over. On a file system
// without flock support (ENOLCK: some NFS mounts) the recorded holder is
// checked instead: a live process on this host, or any process on another
// host, holds it; a dead one on this host is taken over.
class DirLock {
 public:
  // Throws simclr::Error "<what> '<dir>' is in use by process <pid> on <host>
  // (started <time>): ..." when another process holds the directory.
  DirLock(const std::string& dir, const std::string& what);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  // Non-empty when a lock recorded by a process that is gone was taken over.
  const std::string& note() const { return note_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_, note_;
};

// Reads a whole file; throws simclr::Error naming the path if it cannot.
std::string read_file(const std::string& path);

uint32_t crc32(const void* data, size_t bytes, uint32_t crc = 0);

}  // namespace simclr
