// engine/npy.cpp - see npy.h.
#include "engine/npy.h"

#include <regex>

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
  std::smatch m;
  SIMCLR_CHECK(std::regex_search(h, m, std::regex("'descr':\\s*'([^']+)'")), "'", path, "': no descr in header");
  DType dt = dtype_of_descr(m[1], path);
  SIMCLR_CHECK(std::regex_search(h, m, std::regex("'fortran_order':\\s*(True|False)")), "'", path,
               "': no fortran_order in header");
  SIMCLR_CHECK(m[1] == "False", "'", path, "': Fortran-order arrays are not supported (save with C order)");
  SIMCLR_CHECK(std::regex_search(h, m, std::regex("'shape':\\s*\\(([^)]*)\\)")), "'", path,
               "': no shape in header");
  std::vector<int64_t> dims;
  std::string shp = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(shp.begin(), shp.end(), num); it != std::sregex_iterator(); ++it)
    dims.push_back(std::stoll(it->str()));
  Shape shape(dims);
  Tensor t = Tensor::empty(shape, dt);
  size_t need = t.nbytes();
  SIMCLR_CHECK(s.size() - hstart - hlen >= need, "'", path, "': truncated data (", s.size() - hstart - hlen,
               " bytes, need ", need, ")");
  std::memcpy(t.data_ptr(), s.data() + hstart + hlen, need);
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
