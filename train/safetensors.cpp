// train/safetensors.cpp - see safetensors.h.
#include "train/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "engine/fileio.h"
#include "engine/json_config.h"

namespace simclr {

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // as the reference reader: 100 MB

DType dtype_from_st(const std::string& s, const std::string& where, const std::string& name) {
  if (s == "F32") return DType::f32;
  if (s == "BF16") return DType::bf16;
  if (s == "F16") return DType::f16;
  if (s == "I64") return DType::i64;
  fail(where, "tensor '", name, "' has dtype \"", s, "\" (this reader supports F32, BF16, F16, I64)");
}
}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i64: return "I64";
    default: fail("safetensors: dtype ", dtype_name(t), " is not supported (F32, BF16, F16, I64)");
  }
}

const SafetensorsEntry* Safetensors::find(const std::string& name) const {
  for (const SafetensorsEntry& e : tensors)
    if (e.name == name) return &e;
  return nullptr;
}

std::string safetensors_to_bytes(const Safetensors& st) {
  json header = json::object();
  uint64_t off = 0;
  for (const SafetensorsEntry& e : st.tensors) {
    SIMCLR_CHECK(!e.name.empty() && e.name != "__metadata__", "safetensors: invalid tensor name '", e.name, "'");
    SIMCLR_CHECK(!header.contains(e.name), "safetensors: duplicate tensor name '", e.name, "'");
    const uint64_t bytes = e.tensor.nbytes();
    header[e.name] = {{"dtype", safetensors_dtype_name(e.tensor.dtype())},
                      {"shape", e.tensor.shape().vec()},
                      {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  if (!st.metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : st.metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::string hs = header.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  std::string out(8 + hs.size() + off, '\0');
  const uint64_t n = hs.size();
  for (int i = 0; i < 8; i++) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(&out[8], hs.data(), hs.size());
  char* data = &out[8 + hs.size()];
  for (const SafetensorsEntry& e : st.tensors) {
    Tensor h = e.tensor.device().is_cpu() ? e.tensor : e.tensor.to(Device::cpu());
    if (h.nbytes() > 0) std::memcpy(data, h.data_ptr(), h.nbytes());
    data += h.nbytes();
  }
  return out;
}

bool looks_like_safetensors(const std::string& s) {
  if (s.size() < 10) return false;
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  return n >= 2 && n <= kMaxHeader && n <= s.size() - 8 && s[8] == '{';
}

Safetensors safetensors_from_bytes(const std::string& s, const std::string& path) {
  const std::string where = "safetensors '" + path + "': ";
  SIMCLR_CHECK(s.size() >= 8, where, "truncated (", s.size(), " bytes; a safetensors file starts with an 8-byte header length)");
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  SIMCLR_CHECK(n <= kMaxHeader, where, "header length ", n, " is implausible (corrupt file, or not safetensors)");
  SIMCLR_CHECK(n <= s.size() - 8, where, "truncated (header of ", n, " bytes does not fit in ", s.size(), " bytes)");
  json header;
  try {
    header = json::parse(s.begin() + 8, s.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const json::exception& e) {
    fail(where, "unreadable JSON header: ", e.what());
  }
  SIMCLR_CHECK(header.is_object(), where, "the header is not a JSON object");
  const uint64_t buffer = s.size() - 8 - n;
  const char* data = s.data() + 8 + n;

  Safetensors st;
  struct Span { uint64_t begin, end; std::string name; };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      SIMCLR_CHECK(e.is_object(), where, "__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        SIMCLR_CHECK(m.value().is_string(), where, "__metadata__ value of '", m.key(), "' is not a string");
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SIMCLR_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), where,
                 "tensor '", name, "' needs dtype, shape and data_offsets");
    SIMCLR_CHECK(e["dtype"].is_string(), where, "tensor '", name, "': dtype is not a string");
    const DType dt = dtype_from_st(e["dtype"].get<std::string>(), where, name);
    const json& sh = e["shape"];
    SIMCLR_CHECK(sh.is_array(), where, "tensor '", name, "': shape is not a list");
    SIMCLR_CHECK(sh.size() <= static_cast<size_t>(kMaxDims), where, "tensor '", name, "' has ", sh.size(),
                 " dimensions (this reader supports at most ", kMaxDims, ")");
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (const json& d : sh) {
      SIMCLR_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where, "tensor '",
                   name, "': shape entries must be non-negative integers");
      const uint64_t v = d.get<uint64_t>();
      SIMCLR_CHECK(v <= buffer && (v == 0 || numel <= buffer / v), where, "tensor '", name,
                   "': shape is larger than the file");
      numel *= v;
      dims.push_back(static_cast<int64_t>(v));
    }
    const json& of = e["data_offsets"];
    SIMCLR_CHECK(of.is_array() && of.size() == 2 && of[0].is_number_unsigned() && of[1].is_number_unsigned(), where,
                 "tensor '", name, "': data_offsets must be two non-negative integers");
    const uint64_t b = of[0].get<uint64_t>(), en = of[1].get<uint64_t>();
    SIMCLR_CHECK(b <= en && en <= buffer, where, "tensor '", name, "': data_offsets [", b, ", ", en,
                 "] lie outside the data buffer of ", buffer, " bytes (truncated file?)");
    SIMCLR_CHECK(en - b == numel * dtype_size(dt), where, "tensor '", name, "': ", en - b,
                 " bytes do not match its shape and dtype (", numel * dtype_size(dt), " bytes)");
    SafetensorsEntry t;
    t.name = name;
    t.tensor = Tensor::empty(Shape(dims), dt);
    if (en > b) std::memcpy(t.tensor.data_ptr(), data + b, en - b);
    st.tensors.push_back(std::move(t));
    spans.push_back({b, en, name});
  }
  // Tensors must tile the buffer: no overlap, no hole, nothing after the last.
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return spans[a].begin != spans[b].begin ? spans[a].begin < spans[b].begin : spans[a].end < spans[b].end;
  });
  uint64_t at = 0;
  for (size_t i : order) {
    SIMCLR_CHECK(spans[i].begin == at, where, "tensor '", spans[i].name, "' starts at byte ", spans[i].begin,
                 " of the data buffer, expected ", at, " (overlapping or missing bytes)");
    at = spans[i].end;
  }
  SIMCLR_CHECK(at == buffer, where, buffer - at, " bytes after the last tensor (corrupt header?)");
  std::vector<SafetensorsEntry> sorted;
  for (size_t i : order) sorted.push_back(std::move(st.tensors[i]));
  st.tensors = std::move(sorted);
  return st;
}

void save_safetensors(const std::string& path, const Safetensors& st) {
  write_file_atomic(path, safetensors_to_bytes(st));
}

Safetensors load_safetensors(const std::string& path) {
  SIMCLR_CHECK(std::filesystem::exists(path), "safetensors '", path, "': no such file");
  SIMCLR_CHECK(!std::filesystem::is_directory(path), "safetensors '", path, "': is a directory");
  return safetensors_from_bytes(read_file(path), path);
}

}  // namespace simclr
