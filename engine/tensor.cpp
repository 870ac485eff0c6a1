// engine/tensor.cpp - Shape, dtype tables, Tensor construction, views,
// conversions and the argument checks shared by all ops.
#include "engine/tensor.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <type_traits>

#include "engine/device.h"

namespace simclr {

// ------------------------------------------------------------------ dtypes
namespace {
struct DTypeInfo {
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"f32", 4}, {"f64", 8}, {"bf16", 2}, {"f16", 2}, {"u8", 1}, {"i32", 4}, {"i64", 8},
};
static_assert(sizeof(kDTypes) / sizeof(kDTypes[0]) == kNumDTypes, "dtype table out of sync with DType");
}  // namespace

size_t dtype_size(DType t) { return kDTypes[static_cast<int>(t)].size; }
const char* dtype_name(DType t) { return kDTypes[static_cast<int>(t)].name; }

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "fp32" || n == "float32") return DType::f32;
  if (n == "f64" || n == "fp64" || n == "float64") return DType::f64;
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  if (n == "f16" || n == "fp16" || n == "float16") return DType::f16;
  if (n == "u8" || n == "uint8") return DType::u8;
  if (n == "i32" || n == "int32") return DType::i32;
  if (n == "i64" || n == "int64") return DType::i64;
  fail("unknown dtype '", n, "' (expected one of f32, f64, bf16, f16, u8, i32, i64)");
}

f16::f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) {  // inf / nan
    bits = static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
    return;
  }
  if (exp >= 31) {  // overflow -> inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (exp <= 0) {  // subnormal or zero
    if (exp < -10) {
      bits = static_cast<uint16_t>(sign);
      return;
    }
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    bits = static_cast<uint16_t>(sign | half);
    return;
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;  // may carry into exp: correct
  bits = static_cast<uint16_t>(half);
}

f16::operator float() const {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400u));
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

std::string Device::str() const {
  if (is_emu()) return "emu";
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "emu") return emu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t pos = 0;
      int k = std::stoi(s.substr(5), &pos);
      if (pos == s.size() - 5 && k >= 0) return cuda(k);
    } catch (...) {
    }
  }
  fail("unknown device '", s, "' (expected cpu, cuda, cuda:K or emu)");
}

// ------------------------------------------------------------------ Shape
Shape::Shape(std::initializer_list<int64_t> dims) {
  SIMCLR_CHECK(dims.size() <= kMaxDims, "shape with ", dims.size(), " dims (max ", kMaxDims, ")");
  for (int64_t v : dims) {
    SIMCLR_CHECK(v >= 0, "negative dimension ", v, " in shape");
    d[n++] = v;
  }
}
Shape::Shape(const std::vector<int64_t>& dims) {
  SIMCLR_CHECK(dims.size() <= kMaxDims, "shape with ", dims.size(), " dims (max ", kMaxDims, ")");
  for (int64_t v : dims) {
    SIMCLR_CHECK(v >= 0, "negative dimension ", v, " in shape");
    d[n++] = v;
  }
}
int64_t Shape::numel() const {
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= d[i];
  return p;
}
bool Shape::operator==(const Shape& o) const {
  if (n != o.n) return false;
  for (int i = 0; i < n; i++)
    if (d[i] != o.d[i]) return false;
  return true;
}
std::string Shape::str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < n; i++) os << (i ? ", " : "") << d[i];
  os << "]";
  return os.str();
}

// ------------------------------------------------------------------ Tensor
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill(value);
  return t;
}

Tensor Tensor::wrap(void* ptr, const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>();
  impl->storage->ptr = ptr;
  impl->storage->bytes = 0;  // not owned
  impl->storage->device = device;
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

std::string Tensor::str() const {
  return detail::cat(dtype_name(dtype()), shape().str(), " on ", device().str());
}
std::string Tensor::describe() const {
  if (!defined()) return "<undefined tensor>";
  return name().empty() ? str() : "'" + name() + "' " + str();
}

void Tensor::fail_host_access() const {
  fail("tensor ", describe(), " accessed on the host (cpu) through data<T>(): copy it with .to(Device::cpu()), "
       "or pass ptr<T>() to a kernel of ", device().str());
}

namespace {
template <class F>
void visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::bf16: f(bf16{}); break;
    case DType::f16: f(f16{}); break;
    case DType::u8: f(uint8_t{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    default: fail("unsupported dtype");
  }
}
template <class T>
double to_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <> double to_double<double>(double v) { return v; }
template <> double to_double<int64_t>(int64_t v) { return static_cast<double>(v); }
template <> double to_double<int32_t>(int32_t v) { return v; }
template <> double to_double<uint8_t>(uint8_t v) { return v; }
template <class T>
T from_double(double v) {
  return T(static_cast<float>(v));
}
template <> double from_double<double>(double v) { return v; }
template <> int64_t from_double<int64_t>(double v) { return static_cast<int64_t>(v); }
template <> int32_t from_double<int32_t>(double v) { return static_cast<int32_t>(v); }
template <> uint8_t from_double<uint8_t>(double v) { return static_cast<uint8_t>(v); }
}  // namespace

double Tensor::at(int64_t i) const {
  SIMCLR_CHECK(device().is_cpu(), "Tensor::at on ", str(), ": copy to cpu first");
  SIMCLR_CHECK(i >= 0 && i < numel(), "index ", i, " out of range for ", str());
  double r = 0;
  visit_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    r = to_double(static_cast<const T*>(data_ptr())[i]);
  });
  return r;
}

double Tensor::item() const {
  SIMCLR_CHECK(numel() == 1, "item() on ", describe(), " which has ", numel(), " elements");
  return device().is_cpu() ? at(0) : to(Device::cpu()).at(0);
}

std::vector<float> Tensor::to_floats() const {
  Tensor h = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<float> v(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); i++) v[static_cast<size_t>(i)] = static_cast<float>(h.at(i));
  return v;
}

Tensor Tensor::view(const Shape& s) const {
  SIMCLR_CHECK(s.numel() == numel(), "view of ", describe(), " as ", s.str(), ": element count differs");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_ptr()->storage;
  impl->offset = impl_ptr()->offset;
  impl->shape = s;
  impl->dtype = dtype();
  return Tensor(impl);
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  SIMCLR_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= size(0), "slice0(", begin, ", ", end,
               ") of ", describe());
  Shape s = shape();
  int64_t row = numel() / std::max<int64_t>(1, size(0));
  s[0] = end - begin;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_ptr()->storage;
  impl->offset = impl_ptr()->offset + static_cast<size_t>(begin * row) * dtype_size(dtype());
  impl->shape = s;
  impl->dtype = dtype();
  return Tensor(impl);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype(), device());
  copy_bytes(t.data_ptr(), device(), data_ptr(), device(), nbytes());
  return t;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor t = empty(shape(), dtype(), d);
  copy_bytes(t.data_ptr(), d, data_ptr(), device(), nbytes());
  return t;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor t = empty(shape(), dt, device());
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  SIMCLR_CHECK(src.numel() == numel(), "copy_from: ", src.describe(), " into ", describe(),
               ": element count differs");
  if (src.dtype() == dtype()) {
    copy_bytes(data_ptr(), device(), src.data_ptr(), src.device(), nbytes());
    return;
  }
  // Conversion on the host (small tensors, tests, checkpoints).
  Tensor s = src.device().is_cpu() ? src : src.to(Device::cpu());
  Tensor d = device().is_cpu() ? *this : empty(shape(), dtype(), Device::cpu());
  visit_dtype(s.dtype(), [&](auto stag) {
    using S = decltype(stag);
    visit_dtype(d.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* sp = static_cast<const S*>(s.data_ptr());
      D* dp = static_cast<D*>(d.data_ptr());
      for (int64_t i = 0; i < numel(); i++) dp[i] = from_double<D>(to_double(sp[i]));
    });
  });
  if (!device().is_cpu()) copy_bytes(data_ptr(), device(), d.data_ptr(), d.device(), nbytes());
}

void Tensor::fill(double value) {
  if (value == 0.0) {
    zero_();
    return;
  }
  Tensor h = device().is_cpu() ? *this : empty(shape(), dtype(), Device::cpu());
  visit_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = from_double<T>(value);
    T* p = static_cast<T*>(h.data_ptr());
    std::fill(p, p + numel(), v);
  });
  if (!device().is_cpu()) copy_bytes(data_ptr(), device(), h.data_ptr(), h.device(), nbytes());
}

void Tensor::zero_() { fill_bytes_zero(data_ptr(), device(), nbytes()); }

void Tensor::accumulate_grad(const Tensor& g) {
  SIMCLR_CHECK(g.shape() == shape(), "gradient ", g.str(), " does not match ", describe());
  SIMCLR_CHECK(g.dtype() == dtype(), "gradient dtype ", dtype_name(g.dtype()), " does not match ", describe());
  SIMCLR_CHECK(g.device() == device(), "gradient on ", g.device().str(), " for ", describe());
  TensorImpl& me = impl();
  if (!me.grad) {
    me.grad = g.clone().impl_ptr();
    return;
  }
  Tensor acc(me.grad);
  SIMCLR_CHECK(device().is_cpu(), "accumulate_grad on ", device().str(), " needs the CUDA backend ops");
  visit_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* a = static_cast<T*>(acc.data_ptr());
    const T* b = static_cast<const T*>(g.data_ptr());
    const int64_t n = numel();
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
#pragma omp parallel for simd if (n > 65536)
      for (int64_t i = 0; i < n; i++) a[i] += b[i];
    } else {
      for (int64_t i = 0; i < n; i++) a[i] = from_double<T>(to_double(a[i]) + to_double(b[i]));
    }
  });
}

// ------------------------------------------------------------------ checks
void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  SIMCLR_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.describe(), " and ",
               b.describe());
}
void check_dtype(const char* op, const Tensor& t, DType expected) {
  SIMCLR_CHECK(t.dtype() == expected, op, ": expected dtype ", dtype_name(expected), ", got ",
               t.describe());
}
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SIMCLR_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.describe(), " and ", b.describe());
}
void check_shape(const char* op, const Tensor& t, const Shape& expected) {
  SIMCLR_CHECK(t.shape() == expected, op, ": expected shape ", expected.str(), ", got ", t.describe());
}
void check_ndim(const char* op, const Tensor& t, int ndim) {
  SIMCLR_CHECK(t.ndim() == ndim, op, ": expected a ", ndim, "-D tensor, got ", t.describe());
}

}  // namespace simclr
