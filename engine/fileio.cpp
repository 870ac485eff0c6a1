// engine/fileio.cpp - see fileio.h.
#include "engine/fileio.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/check.h"

namespace simclr {

namespace {
const char* node_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}
}  // namespace

std::string output_target(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; hops++) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      SIMCLR_CHECK(errno == ENOENT, "cannot write '", path, "': ", std::strerror(errno));
      return p;  // a new file
    }
    if (S_ISREG(st.st_mode)) return p;
    if (!S_ISLNK(st.st_mode))
      fail("cannot write '", path, "': it is ", node_kind(st.st_mode),
           " (refused: the atomic write, a temporary file renamed into place, would replace it by a regular file); "
           "give the path of a regular file");
    std::error_code ec;
    std::filesystem::path target = std::filesystem::read_symlink(p, ec);
    SIMCLR_CHECK(!ec, "cannot write '", path, "': cannot read the symbolic link: ", ec.message());
    if (target.is_relative()) target = std::filesystem::path(p).parent_path() / target;
    p = target.string();
  }
  fail("cannot write '", path, "': too many levels of symbolic links");
}

void write_file_atomic(const std::string& path_in, std::string_view data) {
  const std::string path = output_target(path_in);  // through a symlink; refuses devices, FIFOs, ...
  const std::string shown = path == path_in ? path_in : path_in + "' (-> '" + path;
  std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(std::random_device{}());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  SIMCLR_CHECK(fd >= 0, "cannot write '", shown, "': ", std::strerror(errno));
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w == 0 ? ENOSPC : errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write '", shown, "': ", std::strerror(e));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("cannot write '", shown, "': ", std::strerror(e));
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write '", shown, "': ", std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write '", shown, "': ", std::strerror(e));
  }
  // The rename itself is durable only once the folder is synced.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void check_output_path(const std::string& flag, const std::string& path, const std::vector<std::string>& inputs,
                       bool replace_existing) {
  const std::string target = output_target(path);  // throws for a device, FIFO, ...
  std::error_code ec;
  if (!std::filesystem::exists(target, ec)) return;
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    std::error_code ec2;
    if (std::filesystem::exists(in, ec2) && std::filesystem::equivalent(in, target, ec2) && !ec2)
      fail(flag, " '", path, "' is the input '", in, "': refusing to overwrite an input; choose another output path");
  }
  SIMCLR_CHECK(replace_existing, flag, " '", path,
               "' already exists and is not a file this command wrote; pass --force to replace it, or choose another "
               "path");
}

void append_file(const std::string& path, std::string_view line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SIMCLR_CHECK(fd >= 0, "cannot append to '", path, "': ", std::strerror(errno));
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = w == 0 ? ENOSPC : errno;
      ::close(fd);
      fail("cannot append to '", path, "': ", std::strerror(e));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  SIMCLR_CHECK(::close(fd) == 0, "cannot append to '", path, "': ", std::strerror(errno));
}

namespace {
std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}
struct LockHolder {
  long pid = 0;
  std::string host, since;
};
LockHolder read_holder(int fd) {
  char buf[512] = {0};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  LockHolder h;
  if (n <= 0) return h;
  std::istringstream in(std::string(buf, static_cast<size_t>(n)));
  std::string key;
  while (in >> key) {
    if (key == "pid") in >> h.pid;
    else if (key == "host") in >> h.host;
    else if (key == "since") std::getline(in >> std::ws, h.since);
  }
  return h;
}
bool alive_here(const LockHolder& h) {
  return h.pid > 0 && h.host == host_name() && (::kill(static_cast<pid_t>(h.pid), 0) == 0 || errno == EPERM);
}
std::string describe(const LockHolder& h) {
  if (h.pid <= 0) return "another process (it has not recorded itself yet)";
  return "process " + std::to_string(h.pid) + " on " + (h.host.empty() ? "?" : h.host) +
         (h.since.empty() ? "" : " (started " + h.since + ")");
}
}  // namespace

DirLock::DirLock(const std::string& dir, const std::string& what)
    : path_((std::filesystem::path(dir) / ".simclr-lock").string()) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  SIMCLR_CHECK(fd_ >= 0, "cannot lock ", what, " '", dir, "': cannot open '", path_, "': ", std::strerror(errno));
  const LockHolder before = read_holder(fd_);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e == EWOULDBLOCK) {
      const LockHolder h = read_holder(fd_);
      ::close(fd_);
      fd_ = -1;
      fail(what, " '", dir, "' is in use by ", describe(h), ": two runs in one directory would overwrite each other's "
           "checkpoints and metrics. Wait for it to end (or stop it), or choose another directory (lock file '",
           path_, "')");
    }
    if (e != ENOLCK && e != EOPNOTSUPP && e != EINVAL) {
      ::close(fd_);
      fd_ = -1;
      fail("cannot lock ", what, " '", dir, "': ", std::strerror(e));
    }
    // No flock on this file system: judge by the recorded holder.
    if (before.pid > 0 && !(before.pid == getpid() && before.host == host_name()) &&
        (alive_here(before) || before.host != host_name())) {
      ::close(fd_);
      fd_ = -1;
      fail(what, " '", dir, "' is in use by ", describe(before), " (this file system has no flock, so the lock file '",
           path_, "' is all there is: delete it if that process is gone)");
    }
  }
  if (before.pid > 0 && before.pid != getpid())
    note_ = "took over the lock of " + describe(before) + ", which is no longer running";
  char when[64] = "?";
  const std::time_t now = std::time(nullptr);
  std::tm tm {};
  if (::gmtime_r(&now, &tm) != nullptr) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  const std::string rec = "pid " + std::to_string(getpid()) + "\nhost " + host_name() + "\nsince " + when + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, rec.data(), rec.size(), 0) != static_cast<ssize_t>(rec.size())) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    fail("cannot lock ", what, " '", dir, "': cannot write '", path_, "': ", std::strerror(e));
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  // Leave the file (unlinking it would race with a process that just opened
  // it); the holder record goes, so nobody reads a finished run as holding it.
  if (::ftruncate(fd_, 0) != 0) {
  }
  ::close(fd_);
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  SIMCLR_CHECK(!std::filesystem::is_directory(path, ec), "cannot read '", path, "': it is a directory");
  std::ifstream f(path, std::ios::binary);
  SIMCLR_CHECK(f.good(), "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  SIMCLR_CHECK(!f.bad(), "error reading '", path, "'");
  return ss.str();
}

uint32_t crc32(const void* data, size_t bytes, uint32_t crc) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uLong c = crc;
  while (bytes > 0) {  // zlib takes uInt lengths
    uInt chunk = static_cast<uInt>(bytes > (1u << 30) ? (1u << 30) : bytes);
    c = ::crc32(c, p, chunk);
    p += chunk;
    bytes -= chunk;
  }
  return static_cast<uint32_t>(c);
}

}  // namespace simclr
