// train/checkpoint.cpp - see checkpoint.h and docs/checkpoint.md.
#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
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
uint32_t flags_from_json(const json& a) {
  uint32_t f = 0;
  for (const json& s : a) {
    std::string n = s.get<std::string>();
    if (n == "trainable") f |= kTrainable;
    else if (n == "bn") f |= kIsBN;
    else if (n == "bias") f |= kIsBias;
    else if (n == "buffer") f |= kIsBuffer;
    else if (n == "head") f |= kIsHead;
  }
  return f;
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

Checkpoint checkpoint_from_bytes(const std::string& s, const std::string& path) {
  const std::string where = "checkpoint '" + path + "': ";
  SIMCLR_CHECK(s.size() >= 8 && std::memcmp(s.data(), kMagic, 8) == 0, where,
               "not a simclr checkpoint (bad magic bytes)");
  SIMCLR_CHECK(s.size() >= kPrefix + 4, where, "truncated (", s.size(), " bytes)");
  const uint32_t version = get<uint32_t>(s, 8);
  SIMCLR_CHECK(version >= 1 && version <= kCheckpointVersion, where, "format version ", version,
               " is not supported (this build reads version ", kCheckpointVersion, ")");
  const uint64_t hlen = get<uint64_t>(s, 16);
  SIMCLR_CHECK(hlen <= s.size() && kPrefix + hlen + 4 <= s.size(), where, "truncated (header of ", hlen,
               " bytes does not fit in ", s.size(), " bytes)");
  const uint32_t stored = get<uint32_t>(s, s.size() - 4);
  const uint32_t actual = crc32(s.data(), s.size() - 4);
  SIMCLR_CHECK(stored == actual, where, "checksum mismatch (file is corrupt or truncated)");
  json header;
  try {
    header = json::parse(s.begin() + kPrefix, s.begin() + static_cast<std::ptrdiff_t>(kPrefix + hlen));
  } catch (const json::exception& e) {
    fail(where, "unreadable header: ", e.what());
  }
  SIMCLR_CHECK(header.is_object() && header.contains("tensors") && header["tensors"].is_array(), where,
               "header has no tensor list");
  const size_t data_start = align_up(kPrefix + hlen);
  Checkpoint ck;
  ck.meta = header.value("meta", json::object());
  try {
    for (const json& e : header["tensors"]) {
      CheckpointTensor t;
      t.name = e.at("name").get<std::string>();
      t.group = e.at("group").get<std::string>();
      t.flags = flags_from_json(e.at("flags"));
      const DType dt = dtype_from_name(e.at("dtype").get<std::string>());
      const Shape shape(e.at("shape").get<std::vector<int64_t>>());
      const size_t off = e.at("offset").get<size_t>(), bytes = e.at("bytes").get<size_t>();
      SIMCLR_CHECK(bytes == static_cast<size_t>(shape.numel()) * dtype_size(dt), where, "tensor '", t.name,
                   "': size does not match its shape");
      SIMCLR_CHECK(data_start + off + bytes <= s.size() - 4, where, "tensor '", t.name, "' lies outside the file");
      t.tensor = Tensor::empty(shape, dt);
      if (bytes > 0) std::memcpy(t.tensor.data_ptr(), &s[data_start + off], bytes);
      ck.tensors.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    fail(where, "malformed tensor list: ", e.what());
  }
  return ck;
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

void prune_checkpoints(const std::string& dir, int keep_last) {
  SIMCLR_CHECK(keep_last >= 1, "keep_last must be at least 1");
  std::vector<std::string> all = list_checkpoints(dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); i++) {
    std::error_code ec;
    fs::remove(all[i], ec);
  }
}

}  // namespace simclr
