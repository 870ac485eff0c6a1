// train/npy.cpp - see npy.h.
#include "train/npy.h"


#include "engine/fileio.h"

namespace simclr {

namespace {
const char* descr_of(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
    case DType::u8: return "|u1";
    default: fail("write_npy: dtype ", dtype_name(t), " has no .npy equivalent here (use f32)");
  }
}
DType dtype_of_descr(const std::string& d, const std::string& path) {
  if (d == "<f4") return DType::f32;
  if (d == "<f8") return DType::f64;
  if (d == "<i4") return DType::i32;
  if (d == "<i8") return DType::i64;
  if (d == "|u1" || d == "<u1") return DType::u8;
  fail("'", path, "': unsupported .npy dtype '", d, "' (supported: <f4 <f8 <i4 <i8 |u1)");
}
}  // namespace

namespace {
// The raw text of `key`'s value in a .npy header dict: a quoted string
// (quotes kept), a parenthesised tuple (parentheses kept) or a bare word.
std::string npy_header_value(const std::string& h, const std::string& key, const std::string& path) {
  const std::string k = "'" + key + "'";
  size_t p = h.find(k);
  SIMCLR_CHECK(p != std::string::npos, "'", path, "': no ", key, " in header");
  p = h.find(':', p + k.size());
  SIMCLR_CHECK(p != std::string::npos, "'", path, "': no value for ", key, " in header");
  p = h.find_first_not_of(" \t", p + 1);
  SIMCLR_CHECK(p != std::string::npos, "'", path, "': no value for ", key, " in header");
  size_t e;
  if (h[p] == '\'') {
    e = h.find('\'', p + 1);
    SIMCLR_CHECK(e != std::string::npos, "'", path, "': unterminated ", key, " in header");
    ++e;
  } else if (h[p] == '(') {
    e = h.find(')', p);
    SIMCLR_CHECK(e != std::string::npos, "'", path, "': unterminated ", key, " in header");
    ++e;
  } else {
    e = h.find_first_of(",}", p);
    if (e == std::string::npos) e = h.size();
    while (e > p && h[e - 1] == ' ') --e;
  }
  return h.substr(p, e - p);
}
}  // namespace

Tensor read_npy(const std::string& path) {
  std::string s = read_file(path);
  SIMCLR_CHECK(s.size() >= 10 && s.compare(0, 6, "\x93NUMPY") == 0, "'", path, "' is not a .npy file");
  int major = static_cast<unsigned char>(s[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = static_cast<unsigned char>(s[8]) | (static_cast<unsigned char>(s[9]) << 8);
    hstart = 10;
  } else {
    SIMCLR_CHECK(s.size() >= 12, "'", path, "': truncated .npy header");
    hlen = 0;
    for (int i = 0; i < 4; i++) hlen |= static_cast<size_t>(static_cast<unsigned char>(s[8 + i])) << (8 * i);
    hstart = 12;
  }
  SIMCLR_CHECK(s.size() >= hstart + hlen, "'", path, "': truncated .npy header");
  std::string h = s.substr(hstart, hlen);
  const std::string descr = npy_header_value(h, "descr", path);
  SIMCLR_CHECK(descr.size() >= 2 && descr.front() == '\'' && descr.back() == '\'', "'", path,
               "': descr is not a string in the header");
  DType dt = dtype_of_descr(descr.substr(1, descr.size() - 2), path);
  const std::string fortran = npy_header_value(h, "fortran_order", path);
  SIMCLR_CHECK(fortran == "False" || fortran == "True", "'", path, "': fortran_order is '", fortran, "'");
  SIMCLR_CHECK(fortran == "False", "'", path, "': Fortran-order arrays are not supported (save with C order)");
  const std::string shp = npy_header_value(h, "shape", path);
  SIMCLR_CHECK(shp.size() >= 2 && shp.front() == '(' && shp.back() == ')', "'", path,
               "': shape is not a tuple in the header");
  std::vector<int64_t> dims;
  for (size_t i = 1; i + 1 < shp.size();) {
    if (shp[i] < '0' || shp[i] > '9') {
      SIMCLR_CHECK(shp[i] == ',' || shp[i] == ' ' || shp[i] == 'L', "'", path, "': bad shape ", shp);
      ++i;
      continue;
    }
    int64_t d = 0;
    for (; i + 1 < shp.size() && shp[i] >= '0' && shp[i] <= '9'; ++i) {
      SIMCLR_CHECK(d <= (int64_t{1} << 40), "'", path, "': shape ", shp, " is too large");
      d = d * 10 + (shp[i] - '0');
    }
    dims.push_back(d);
  }
  // The byte count from the header, checked against the file before anything
  // is allocated (a header may claim any shape; found by tests/fuzz/fuzz_npy.cpp).
  const size_t have = s.size() - hstart - hlen;
  size_t need = dtype_size(dt);
  bool fits = true;
  for (int64_t d : dims) {
    if (d == 0) {
      need = 0;
      fits = true;
      break;
    }
    if (need > have / static_cast<size_t>(d)) fits = false;  // also keeps need * d from overflowing
    else need *= static_cast<size_t>(d);
  }
  SIMCLR_CHECK(fits && have >= need, "'", path, "': truncated data (", have, " bytes, the header's shape ", shp,
               " needs more)");
  Shape shape(dims);
  Tensor t = Tensor::empty(shape, dt);
  if (need > 0) std::memcpy(t.data_ptr(), s.data() + hstart + hlen, need);
  return t;
}

void write_npy(const std::string& path, const Tensor& t0) {
  Tensor t = t0.device().is_cpu() ? t0 : t0.to(Device::cpu());
  std::string shape = "(";
  for (int i = 0; i < t.ndim(); i++) shape += std::to_string(t.size(i)) + (t.ndim() == 1 ? ",)" : i + 1 < t.ndim() ? ", " : ")");
  if (t.ndim() == 0) shape += ")";
  std::string h = std::string("{'descr': '") + descr_of(t.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>((h.size() >> 8) & 0xff);
  out += h;
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  write_file_atomic(path, out);
}

}  // namespace simclr
