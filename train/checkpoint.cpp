// train/checkpoint.cpp - see checkpoint.h and docs/checkpoint.md.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "engine/fileio.h"

namespace simclr {

namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'S', 'I', 'M', 'C', 'L', 'R', 'C', 'K'};
constexpr size_t kAlign = 64;
constexpr size_t kPrefix = 24;

size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

template <class T>
void put(std::string& s, size_t at, T v) {
  std::memcpy(&s[at], &v, sizeof(T));
}
template <class T>
T get(const std::string& s, size_t at) {
  T v;
  std::memcpy(&v, &s[at], sizeof(T));
  return v;
}

json flags_json(uint32_t f) {
  json a = json::array();
  if (f & kTrainable) a.push_back("trainable");
  if (f & kIsBN) a.push_back("bn");
  if (f & kIsBias) a.push_back("bias");
  if (f & kIsBuffer) a.push_back("buffer");
  if (f & kIsHead) a.push_back("head");
  return a;
}
}  // namespace

const CheckpointTensor* Checkpoint::find(const std::string& name, const std::string& grp) const {
  for (const CheckpointTensor& t : tensors)
    if (t.name == name && t.group == grp) return &t;
  return nullptr;
}

std::vector<const CheckpointTensor*> Checkpoint::group(const std::string& grp) const {
  std::vector<const CheckpointTensor*> v;
  for (const CheckpointTensor& t : tensors)
    if (t.group == grp) v.push_back(&t);
  return v;
}

std::string checkpoint_to_bytes(const Checkpoint& ck) {
  json header;
  header["meta"] = ck.meta;
  json list = json::array();
  size_t off = 0;
  std::vector<Tensor> host;
  for (const CheckpointTensor& t : ck.tensors) {
    Tensor h = t.tensor.device().is_cpu() ? t.tensor : t.tensor.to(Device::cpu());
    host.push_back(h);
    json e;
    e["name"] = t.name;
    e["group"] = t.group;
    e["dtype"] = dtype_name(h.dtype());
    e["shape"] = h.shape().vec();
    e["offset"] = off;
    e["bytes"] = h.nbytes();
    e["flags"] = flags_json(t.flags);
    list.push_back(e);
    off = align_up(off + h.nbytes());
  }
  header["tensors"] = list;
  const std::string hs = header.dump();
  const size_t data_start = align_up(kPrefix + hs.size());
  std::string out(data_start + off + 4, '\0');
  std::memcpy(&out[0], kMagic, 8);
  put<uint32_t>(out, 8, kCheckpointVersion);
  put<uint32_t>(out, 12, 0);
  put<uint64_t>(out, 16, hs.size());
  std::memcpy(&out[kPrefix], hs.data(), hs.size());
  for (size_t i = 0; i < host.size(); i++) {
    size_t o = data_start + list[i]["offset"].get<size_t>();
    if (host[i].nbytes() > 0) std::memcpy(&out[o], host[i].data_ptr(), host[i].nbytes());
  }
  put<uint32_t>(out, out.size() - 4, crc32(out.data(), out.size() - 4));
  return out;
}

namespace {
// One entry of the header's tensor list, checked against the file.
struct TableEntry {
  std::string name, group;
  uint32_t flags = 0;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t offset = 0, bytes = 0;
};

uint64_t read_u64_field(const json& e, const char* key, const std::string& where, const std::string& tname) {
  SIMCLR_CHECK(e.contains(key), where, "tensor '", tname, "' has no \"", key, "\"");
  const json& v = e[key];
  SIMCLR_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), where, "tensor '", tname,
               "': \"", key, "\" must be a non-negative integer, got ", v.dump());
  return v.get<uint64_t>();
}

// Every check on the tensor list that does not need the tensor bytes:
// names, groups, flags, dtypes, shapes, offsets and sizes inside the data
// section (overflow-safe), 64-byte alignment, no two tensors overlapping.
std::vector<TableEntry> parse_tensor_table(const json& header, uint64_t data_bytes, const std::string& where) {
  SIMCLR_CHECK(header.is_object() && header.contains("tensors") && header["tensors"].is_array(), where,
               "header has no tensor list");
  SIMCLR_CHECK(!header.contains("meta") || header["meta"].is_object(), where, "header \"meta\" is not an object");
  std::vector<TableEntry> out;
  std::set<std::pair<std::string, std::string>> names;
  for (const json& e : header["tensors"]) {
    SIMCLR_CHECK(e.is_object(), where, "malformed tensor list: an entry is not an object");
    TableEntry t;
    SIMCLR_CHECK(e.contains("name") && e["name"].is_string() && !e["name"].get<std::string>().empty(), where,
                 "malformed tensor list: an entry has no name");
    t.name = e["name"].get<std::string>();
    SIMCLR_CHECK(e.contains("group") && e["group"].is_string(), where, "tensor '", t.name, "' has no group");
    t.group = e["group"].get<std::string>();
    SIMCLR_CHECK(t.group == "model" || t.group == "optimizer", where, "tensor '", t.name, "': unknown group '",
                 t.group, "' (expected model or optimizer)");
    SIMCLR_CHECK(names.insert({t.group, t.name}).second, where, "tensor '", t.name, "' appears twice in group ",
                 t.group);
    SIMCLR_CHECK(e.contains("flags") && e["flags"].is_array(), where, "tensor '", t.name, "' has no flag list");
    for (const json& f : e["flags"]) {
      SIMCLR_CHECK(f.is_string(), where, "tensor '", t.name, "': a flag is not a string");
      const std::string n = f.get<std::string>();
      if (n == "trainable") t.flags |= kTrainable;
      else if (n == "bn") t.flags |= kIsBN;
      else if (n == "bias") t.flags |= kIsBias;
      else if (n == "buffer") t.flags |= kIsBuffer;
      else if (n == "head") t.flags |= kIsHead;
      else fail(where, "tensor '", t.name, "': unknown flag '", n, "'");
    }
    SIMCLR_CHECK(e.contains("dtype") && e["dtype"].is_string(), where, "tensor '", t.name, "' has no dtype");
    try {
      t.dtype = dtype_from_name(e["dtype"].get<std::string>());
    } catch (const Error& err) {
      fail(where, "tensor '", t.name, "': ", err.what());
    }
    SIMCLR_CHECK(e.contains("shape") && e["shape"].is_array() && e["shape"].size() <= static_cast<size_t>(kMaxDims),
                 where, "tensor '", t.name, "': the shape must be a list of at most ", kMaxDims, " sizes");
    const uint64_t esize = dtype_size(t.dtype);
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
      SIMCLR_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, where, "tensor '", t.name,
                   "': a shape size is not a non-negative integer (", d.dump(), ")");
      const uint64_t v = d.get<uint64_t>();
      // numel * esize must stay <= data_bytes: checked per factor, no overflow
      if (v != 0 && numel > data_bytes / esize / v) numel = UINT64_MAX;
      else if (numel != UINT64_MAX) numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    t.offset = read_u64_field(e, "offset", where, t.name);
    t.bytes = read_u64_field(e, "bytes", where, t.name);
    bool zero = false;
    for (int64_t v : t.shape) zero = zero || v == 0;
    SIMCLR_CHECK(zero || numel != UINT64_MAX, where, "tensor '", t.name, "' of shape ", e["shape"].dump(),
                 " is larger than the file's data section (", data_bytes, " bytes)");
    if (zero) numel = 0;
    SIMCLR_CHECK(t.bytes == numel * esize, where, "tensor '", t.name, "': ", t.bytes, " bytes do not match its shape ",
                 e["shape"].dump(), " of ", dtype_name(t.dtype), " (", numel * esize, " bytes)");
    SIMCLR_CHECK(t.offset % kAlign == 0, where, "tensor '", t.name, "': offset ", t.offset,
                 " is not a multiple of ", kAlign);
    SIMCLR_CHECK(t.offset <= data_bytes && t.bytes <= data_bytes - t.offset, where, "tensor '", t.name,
                 "' lies outside the file (offset ", t.offset, " + ", t.bytes, " bytes, data section of ", data_bytes,
                 " bytes)");
    out.push_back(std::move(t));
  }
  std::vector<const TableEntry*> by_offset;
  for (const TableEntry& t : out)
    if (t.bytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TableEntry* a, const TableEntry* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); i++)
    SIMCLR_CHECK(by_offset[i]->offset >= by_offset[i - 1]->offset + by_offset[i - 1]->bytes, where, "tensors '",
                 by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");
  return out;
}

// meta.state, where present: the counters a resume and an export read.
void check_state(const json& meta, const std::string& where) {
  if (!meta.contains("state")) return;
  const json& s = meta["state"];
  SIMCLR_CHECK(s.is_object(), where, "meta.state is not an object");
  auto nonneg = [&](const char* key, int64_t lo) -> int64_t {
    if (!s.contains(key)) return -1;
    const json& v = s[key];
    SIMCLR_CHECK(v.is_number_integer() && v.get<int64_t>() >= lo, where, "meta.state.", key,
                 " must be an integer >= ", lo, ", got ", v.dump());
    return v.get<int64_t>();
  };
  const int64_t step = nonneg("step", 0), total = nonneg("total_steps", 0), spe = nonneg("steps_per_epoch", 1);
  const int64_t epoch = nonneg("epoch", 0), bie = nonneg("batch_in_epoch", 0);
  SIMCLR_CHECK(s.contains("step"), where, "meta.state has no step");
  SIMCLR_CHECK(total < 0 || step <= total, where, "meta.state.step ", step, " is beyond meta.state.total_steps ",
               total);
  if (spe > 0 && step >= 0) {
    SIMCLR_CHECK(epoch < 0 || epoch == step / spe, where, "meta.state.epoch ", epoch, " does not match step ", step,
                 " at ", spe, " steps per epoch");
    SIMCLR_CHECK(bie < 0 || bie == step % spe, where, "meta.state.batch_in_epoch ", bie, " does not match step ",
                 step, " at ", spe, " steps per epoch");
  }
}

// Magic, version, header length and the data section of a file of `size`
// bytes whose first bytes are `prefix` (at least kPrefix of them).
struct Layout {
  uint64_t hlen = 0, data_start = 0, data_bytes = 0;
};
Layout check_prefix(const char* p, uint64_t size, const std::string& where) {
  SIMCLR_CHECK(size >= 8 && std::memcmp(p, kMagic, 8) == 0, where, "not a simclr checkpoint (bad magic bytes)");
  SIMCLR_CHECK(size >= kPrefix + 4, where, "truncated (", size, " bytes)");
  uint32_t version;
  std::memcpy(&version, p + 8, 4);
  SIMCLR_CHECK(version >= 1 && version <= kCheckpointVersion, where, "format version ", version,
               " is not supported (this build reads version ", kCheckpointVersion, ")");
  Layout l;
  std::memcpy(&l.hlen, p + 16, 8);
  SIMCLR_CHECK(l.hlen <= size - kPrefix - 4, where, "truncated (header of ", l.hlen, " bytes does not fit in ", size,
               " bytes)");
  l.data_start = align_up(kPrefix + l.hlen);
  SIMCLR_CHECK(l.data_start <= size - 4, where, "truncated (the data section would start at byte ", l.data_start,
               " of ", size, ")");
  l.data_bytes = size - 4 - l.data_start;
  return l;
}

json parse_header(const char* p, const Layout& l, const std::string& where) {
  json header;
  try {
    header = json::parse(p + kPrefix, p + kPrefix + l.hlen);
  } catch (const json::exception& e) {
    fail(where, "unreadable header: ", e.what());
  }
  return header;
}
}  // namespace

Checkpoint checkpoint_from_bytes(const std::string& s, const std::string& path) {
  const std::string where = "checkpoint '" + path + "': ";
  const Layout l = check_prefix(s.data(), s.size(), where);
  const uint32_t stored = get<uint32_t>(s, s.size() - 4);
  const uint32_t actual = crc32(s.data(), s.size() - 4);
  SIMCLR_CHECK(stored == actual, where, "checksum mismatch (file is corrupt or truncated)");
  const json header = parse_header(s.data(), l, where);
  const std::vector<TableEntry> table = parse_tensor_table(header, l.data_bytes, where);
  Checkpoint ck;
  ck.meta = header.value("meta", json::object());
  check_state(ck.meta, where);
  for (const TableEntry& e : table) {
    CheckpointTensor t;
    t.name = e.name;
    t.group = e.group;
    t.flags = e.flags;
    t.tensor = Tensor::empty(Shape(e.shape), e.dtype);
    if (e.bytes > 0) std::memcpy(t.tensor.data_ptr(), s.data() + l.data_start + e.offset, e.bytes);
    ck.tensors.push_back(std::move(t));
  }
  return ck;
}

std::string verify_checkpoint_file(const std::string& path) {
  const std::string where = "checkpoint '" + path + "': ";
  try {
    std::error_code ec;
    if (!fs::exists(path, ec)) fail(where, "no such file");
    if (fs::is_directory(path, ec)) fail(where, "is a directory");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(where, "cannot read: ", std::strerror(errno));
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) fail(where, "not a regular file");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    // The CRC over the whole file in 4 MiB chunks; the prefix and the header are kept.
    std::string head;
    std::vector<char> buf(4 << 20);
    uint32_t crc = 0, stored = 0;
    uint64_t pos = 0;
    char tail[4];
    while (pos < size) {
      const ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(where, "read error: ", std::strerror(errno));
      if (r == 0) fail(where, "truncated (the file shrank while it was read)");
      const uint64_t n = static_cast<uint64_t>(r);
      const uint64_t crc_end = size >= 4 ? size - 4 : 0;  // bytes [0, crc_end) are checksummed
      if (pos < crc_end) crc = crc32(buf.data(), static_cast<size_t>(std::min(n, crc_end - pos)), crc);
      for (uint64_t i = pos < crc_end ? crc_end - pos : 0; i < n; i++) tail[pos + i - crc_end] = buf[i];
      if (head.size() < (1u << 26)) head.append(buf.data(), static_cast<size_t>(std::min<uint64_t>(n, (1u << 26) - head.size())));
      pos += n;
    }
    const Layout l = check_prefix(head.data(), size, where);
    std::memcpy(&stored, tail, 4);
    SIMCLR_CHECK(stored == crc, where, "checksum mismatch (file is corrupt or truncated)");
    SIMCLR_CHECK(kPrefix + l.hlen <= head.size(), where, "header of ", l.hlen, " bytes is too large");
    const json header = parse_header(head.data(), l, where);
    parse_tensor_table(header, l.data_bytes, where);
    check_state(header.value("meta", json::object()), where);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

namespace {
// Test hook (tests/kill_resume_check.py): with the environment variable
// SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS=N (N > 0) a save first writes the
// first half of the file to "<path>.tmp.<pid>.partial" - the state an atomic
// write killed half way leaves: a partial temporary, the target not yet
// renamed into place - sleeps N ms, removes it and only then writes the file
// atomically, so that a test can SIGKILL a `simclr train` process while a
// checkpoint is being written. Unset (always, outside tests) it costs one
// getenv per checkpoint.
void test_hook_slow_write(const std::string& path, const std::string& bytes) {
  const char* env = std::getenv("SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS");
  const long ms = env != nullptr ? std::strtol(env, nullptr, 10) : 0;
  if (ms <= 0) return;
  const std::string partial = path + ".tmp." + std::to_string(getpid()) + ".partial";
  {
    std::ofstream f(partial, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::error_code ec;
  fs::remove(partial, ec);
}
}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ck) {
  const std::string bytes = checkpoint_to_bytes(ck);
  test_hook_slow_write(path, bytes);
  write_file_atomic(path, bytes);
}

Checkpoint load_checkpoint(const std::string& path) {
  SIMCLR_CHECK(fs::exists(path), "checkpoint '", path, "': no such file");
  SIMCLR_CHECK(!fs::is_directory(path), "checkpoint '", path, "': is a directory (pass a checkpoint file, or use --resume with a run directory)");
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    fail("checkpoint '", path, "': ", e.what());
  }
  return checkpoint_from_bytes(bytes, path);
}

void add_model_tensors(Checkpoint& ck, const ParamStore& store) {
  SIMCLR_CHECK(store.materialized(), "checkpoint: the parameter store is not materialised");
  for (const Param& p : store.params()) {
    CheckpointTensor t;
    t.name = p.name;
    t.group = "model";
    t.flags = p.flags;
    t.tensor = p.value.device().is_cpu() ? p.value.clone() : p.value.to(Device::cpu());
    ck.tensors.push_back(std::move(t));
  }
}

void load_model_tensors(const Checkpoint& ck, ParamStore& store, bool skip_head) {
  SIMCLR_CHECK(store.materialized(), "checkpoint: the parameter store is not materialised");
  for (Param& p : store.params()) {
    if (skip_head && (p.flags & kIsHead)) continue;
    const CheckpointTensor* t = ck.find(p.name);
    SIMCLR_CHECK(t != nullptr, "checkpoint does not match the model: it has no tensor '", p.name,
                 "' (different architecture?)");
    SIMCLR_CHECK(t->tensor.shape() == p.shape, "checkpoint does not match the model: '", p.name, "' has shape ",
                 t->tensor.shape().str(), " in the checkpoint but ", p.shape.str(), " in the model (different width/depth?)");
    SIMCLR_CHECK(t->tensor.dtype() == p.value.dtype(), "checkpoint does not match the model: '", p.name, "' is ",
                 dtype_name(t->tensor.dtype()), " in the checkpoint");
    p.value.copy_from(t->tensor);
  }
  for (const CheckpointTensor* t : ck.group("model")) {
    if (skip_head && (t->flags & kIsHead)) continue;
    SIMCLR_CHECK(store.find(t->name) != nullptr, "checkpoint does not match the model: the checkpoint has '", t->name,
                 "' which the model does not (different architecture?)");
  }
}

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint-%09lld.ckpt", static_cast<long long>(step));
  return (fs::path(dir) / buf).string();
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<long long, std::string>> v;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    long long step;
    char tail[8] = {0};
    if (n.size() == 25 && std::sscanf(n.c_str(), "checkpoint-%9lld.%4s", &step, tail) == 2 &&
        std::string(tail) == "ckpt")
      v.emplace_back(step, e.path().string());
  }
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& p : v) out.push_back(p.second);
  return out;
}

std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped, Checkpoint* out) {
  std::vector<std::string> all = list_checkpoints(dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      Checkpoint ck = load_checkpoint(*it);
      if (out) *out = std::move(ck);
      return *it;
    } catch (const Error& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return "";
}

namespace {
int64_t step_of(const std::string& path) {
  long long step = -1;
  std::sscanf(fs::path(path).filename().string().c_str(), "checkpoint-%9lld", &step);
  return step;
}

// Renames a bad checkpoint to "<path>.bad" (".bad.2", ... when taken), so
// that no listing, resume or rotation sees it again; returns the new name
// ("" when the rename failed: the file stays where it is).
std::string set_aside(const std::string& path) {
  std::string to = path + ".bad";
  std::error_code ec;
  for (int i = 2; fs::exists(fs::symlink_status(to, ec)) && i < 1000; i++) to = path + ".bad." + std::to_string(i);
  fs::rename(path, to, ec);
  return ec ? "" : to;
}
}  // namespace

std::string describe_set_aside(const SkippedCheckpoint& s) {
  return s.reason + (s.moved_to.empty() ? std::string(" (left in place)")
                                        : " (renamed to " + fs::path(s.moved_to).filename().string() + ")");
}

ResumeChoice choose_resume_checkpoint(const std::string& dir, Checkpoint* out) {
  ResumeChoice c;
  std::vector<std::string> all = list_checkpoints(dir);
  std::vector<std::pair<std::string, std::string>> bad;  // path, reason (newest first)
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      Checkpoint ck = load_checkpoint(*it);
      if (out) *out = std::move(ck);
      c.path = *it;
      break;
    } catch (const Error& e) {
      bad.emplace_back(*it, e.what());
    }
  }
  if (c.path.empty() && !bad.empty()) {
    std::string list;
    for (auto& [p, why] : bad) list += "\n  " + why;
    fail("--resume: none of the ", bad.size(), " checkpoint(s) in '", dir,
         "' is usable, so the run cannot continue:", list,
         "\nNothing was changed. Starting again from step 0 would discard this run's progress; to do that on "
         "purpose, move these files out of the run directory and run again (or choose another train.run_dir).");
  }
  for (auto& [p, why] : bad) c.skipped.push_back({p, why, set_aside(p)});
  return c;
}

std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last, const std::string& written) {
  SIMCLR_CHECK(keep_last >= 1, "keep_last must be at least 1");
  std::vector<std::string> notes;
  std::vector<std::string> all = list_checkpoints(dir);
  const int64_t newest = written.empty() ? (all.empty() ? -1 : step_of(all.back())) : step_of(written);
  if (!written.empty()) {
    const std::string why = verify_checkpoint_file(written);
    SIMCLR_CHECK(why.empty(), "the checkpoint just written does not verify: ", why);
  }
  int kept = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const int64_t s = step_of(*it);
    if (s > newest) {  // not ours to judge (this run never wrote past `written`)
      notes.push_back("note: " + *it + " is newer than the checkpoint just written; left in place");
      continue;
    }
    if (kept >= keep_last) {
      std::error_code ec;
      fs::remove(*it, ec);
      if (ec) notes.push_back("warning: cannot delete old checkpoint " + *it + ": " + ec.message());
      continue;
    }
    const std::string why = *it == written ? std::string() : verify_checkpoint_file(*it);
    if (why.empty()) {
      kept++;
    } else {
      const std::string to = set_aside(*it);
      notes.push_back("warning: a kept checkpoint does not verify: " +
                      describe_set_aside({*it, why, to}) + "; an older good one is kept instead");
    }
  }
  return notes;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  const std::string mine = ".tmp." + std::to_string(getpid()) + ".";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const size_t at = n.rfind(".tmp.");
    if (at == std::string::npos || at == 0) continue;
    size_t i = at + 5, digits = 0;
    while (i < n.size() && n[i] >= '0' && n[i] <= '9') i++, digits++;
    if (digits == 0 || i >= n.size() || n[i] != '.' || n.compare(at, mine.size(), mine) == 0) continue;
    // only temporaries of the files a run writes: never a user's file that happens to match
    const std::string target = n.substr(0, at);
    long long step;
    char tail[8] = {0};
    const bool ours = target == "config.json" || target == "metrics.jsonl" || target == "results.json" ||
                      target.rfind("metrics.jsonl.", 0) == 0 ||
                      (target.size() == 25 && std::sscanf(target.c_str(), "checkpoint-%9lld.%4s", &step, tail) == 2 &&
                       std::string(tail) == "ckpt");
    if (!ours) continue;
    std::error_code ec2;
    if (!fs::is_regular_file(fs::symlink_status(e.path(), ec2))) continue;
    if (fs::remove(e.path(), ec2)) removed.push_back(n);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

CheckpointRunState checkpoint_run_state(const Checkpoint& ck, const std::string& path) {
  const std::string where = "checkpoint '" + path + "': ";
  SIMCLR_CHECK(ck.meta.contains("state") && ck.meta["state"].is_object(), where,
               "has no meta.state (not a checkpoint written by simclr train?)");
  const json& s = ck.meta["state"];
  check_state(ck.meta, where);
  CheckpointRunState r;
  for (const char* key : {"step", "steps_per_epoch", "total_steps"})
    SIMCLR_CHECK(s.contains(key), where, "meta.state has no ", key, " (not a checkpoint written by simclr train?)");
  r.step = s["step"].get<int64_t>();
  r.steps_per_epoch = s["steps_per_epoch"].get<int64_t>();
  r.total_steps = s["total_steps"].get<int64_t>();
  if (s.contains("epoch_loss_sum") || s.contains("epoch_loss_steps")) {
    SIMCLR_CHECK(s.contains("epoch_loss_sum") && s["epoch_loss_sum"].is_number() && s.contains("epoch_loss_steps") &&
                     s["epoch_loss_steps"].is_number_integer(),
                 where, "meta.state.epoch_loss_sum / epoch_loss_steps are malformed");
    r.epoch_loss_sum = s["epoch_loss_sum"].get<double>();
    r.epoch_loss_steps = s["epoch_loss_steps"].get<int64_t>();
    SIMCLR_CHECK(std::isfinite(r.epoch_loss_sum) && r.epoch_loss_steps >= 0 &&
                     r.epoch_loss_steps <= r.step % r.steps_per_epoch,
                 where, "meta.state.epoch_loss_steps ", r.epoch_loss_steps, " does not fit step ", r.step);
  }
  return r;
}

}  // namespace simclr
