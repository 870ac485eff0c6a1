// engine/tensor.h - the tensor: dtype, device, contiguous shape (up to 5-D),
// storage from an allocator, and the autograd slots.
//
// Layout conventions used across the engine:
//   images / activations  NHWC   (N batch, H height, W width, C channels)
//   conv weights          OHWI   (O out channels, kH, kW, I in channels)
//   linear weights        OI     (out, in), y = x W^T + b, as in PyTorch
//   embeddings            (V, D) rows = views, D = feature dimension
// All tensors are contiguous row-major; a view shares storage at an offset.
//
// A Tensor is a cheap handle (shared pointer to its impl); copying a Tensor
// aliases it. `clone()` copies the data.
//
// Element access: data<T>() is HOST access (the tensor must be on the CPU;
// for tests, loaders, file formats, logs); ptr<T>() is the typed pointer to
// the tensor's memory on whatever device it lives, for kernel arguments (op
// bodies pass ptr<T>() to the kernels kernels/registry.h dispatches to, and
// never touch elements themselves). Both check T against the dtype.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"

namespace simclr {

constexpr int kMaxDims = 5;

struct Shape {
  int64_t d[kMaxDims] = {0, 0, 0, 0, 0};
  int n = 0;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int64_t operator[](int i) const { return d[i < 0 ? i + n : i]; }
  int64_t& operator[](int i) { return d[i < 0 ? i + n : i]; }
  int64_t numel() const;
  int ndim() const { return n; }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(d, d + n); }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 3, 4]"
};

// Raw memory owned by an allocator. Freed (returned to its allocator) when the
// last Tensor referring to it goes away.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device;
  bool pinned = false;  // page-locked host memory (engine/async.h pinned_empty)
  ~Storage();
};

class Tensor;
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes from storage->ptr
  Shape shape;
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // same shape/dtype/device once defined
  std::string name;                  // optional, for error messages
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- construction
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape) {
    SIMCLR_CHECK(static_cast<int64_t>(v.size()) == shape.numel(), "from_vector: ", v.size(),
                 " values for shape ", shape.str());
    Tensor t = empty(shape, dtype_of<T>::value);
    std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(T));
    return t;
  }
  // A tensor over existing memory that the caller keeps alive (no ownership).
  static Tensor wrap(void* ptr, const Shape& shape, DType dtype, Device device = Device::cpu());

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int ndim() const { return impl().shape.n; }
  int64_t size(int i) const { return impl().shape[i]; }
  int64_t numel() const { return impl().shape.numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "f32[2, 3] on cpu"
  const std::string& name() const { return impl().name; }
  Tensor& set_name(std::string n) { impl().name = std::move(n); return *this; }

  // ---- data
  void* data_ptr() const {
    return static_cast<char*>(impl().storage->ptr) + impl().offset;
  }
  // Typed pointer to the memory on the tensor's device (a device pointer for
  // a CUDA tensor), for kernel arguments; throws if T does not match the dtype.
  template <class T>
  T* ptr() const {
    SIMCLR_CHECK(dtype_of<T>::value == dtype(), "tensor ", describe(), " accessed as ",
                 dtype_name(dtype_of<T>::value));
    return static_cast<T*>(data_ptr());
  }
  // Typed host pointer: throws, naming both devices, unless the tensor is on
  // the CPU, and if T does not match the dtype.
  template <class T>
  T* data() const {
    if (!device().is_cpu()) fail_host_access();
    return ptr<T>();
  }
  // Element i (flat index) converted to double; CPU only. For tests and logs.
  double at(int64_t i) const;
  double item() const;  // single-element tensor -> double (copies from GPU)
  std::vector<float> to_floats() const;  // any float dtype, any device -> host floats

  // ---- views and copies
  Tensor view(const Shape& shape) const;             // same storage, new shape
  Tensor slice0(int64_t begin, int64_t end) const;   // rows [begin, end) of dim 0
  Tensor clone() const;                              // deep copy, no autograd
  Tensor to(Device device) const;                    // copy (or self when same device)
  Tensor to(DType dtype) const;                      // converted copy (or self)
  void copy_from(const Tensor& src);                 // same shape, any dtype/device
  void fill(double value);
  void zero_();

  // ---- autograd
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r = true) { impl().requires_grad = r; return *this; }
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  // Adds g into .grad (allocating it on first use); checks shape/dtype/device.
  void accumulate_grad(const Tensor& g);
  void zero_grad() { if (impl().grad) Tensor(impl().grad).zero_(); }

  TensorImpl& impl() const {
    SIMCLR_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  std::string describe() const;  // name (if any) + str()

 private:
  [[noreturn]] void fail_host_access() const;
  std::shared_ptr<TensorImpl> impl_;
};

// t.ptr<T>(), or nullptr for an undefined tensor (optional kernel arguments:
// a bias, a gradient nobody wants).
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.ptr<T>() : nullptr;
}

// Argument checks with clear messages, used by every op.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, DType expected);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_shape(const char* op, const Tensor& t, const Shape& expected);
void check_ndim(const char* op, const Tensor& t, int ndim);

}  // namespace simclr
