// tests/guarded.h - the one guard-buffer helper of the tests: a buffer of n
// values of T with kGuardBytes guard bytes (0xA5) on each side, in host
// memory (CPU kernels, the emulated CUDA kernels) or device memory (the real
// GPU kernels), allocated through the engine (engine/device.h) so the same
// code serves both. The payload starts as `fill` bytes (0xFF by default: a NaN
// in f32, f64, bf16 and f16, so an output element a kernel forgets to write
// shows up as NaN) or as given values. guards_intact() reads the whole buffer
// back and checks every guard byte, so any write before or after the payload
// is caught. (Engine ops are covered by the CPU allocator's own debug mode,
// engine/device.h; this is for kernels called directly with raw pointers.)
#pragma once
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/check.h"
#include "engine/device.h"

namespace simclr::test {

template <class T>
class Guarded {
 public:
  static constexpr size_t kGuardBytes = 256;
  static constexpr unsigned char kGuardByte = 0xA5, kPoison = 0xFF;

  explicit Guarded(size_t n, unsigned char fill = kPoison, Device device = Device::cpu()) : n_(n), device_(device) {
    std::vector<unsigned char> raw(bytes() + 2 * kGuardBytes, kGuardByte);
    std::memset(raw.data() + kGuardBytes, fill, bytes());
    storage_ = allocate_storage(raw.size(), device);
    copy_bytes(storage_->ptr, device, raw.data(), Device::cpu(), raw.size());
  }
  explicit Guarded(const std::vector<T>& values, Device device = Device::cpu()) : Guarded(values.size(), 0, device) {
    put(values);
  }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  // The payload (a device pointer on a GPU).
  T* data() const { return reinterpret_cast<T*>(static_cast<unsigned char*>(storage_->ptr) + kGuardBytes); }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  // Host memory only (CPU and emulator buffers).
  T& operator[](size_t i) const {
    SIMCLR_ASSERT(device_.is_cpu() && i < n_);
    return data()[i];
  }

  void put(const std::vector<T>& v) {  // payload := v
    SIMCLR_ASSERT(v.size() == n_);
    copy_bytes(data(), device_, v.data(), Device::cpu(), bytes());
  }
  std::vector<T> get() const {  // a host copy of the payload
    std::vector<T> v(n_);
    copy_bytes(v.data(), Device::cpu(), data(), device_, bytes());
    return v;
  }
  bool guards_intact() const {
    std::vector<unsigned char> raw(bytes() + 2 * kGuardBytes);
    copy_bytes(raw.data(), Device::cpu(), storage_->ptr, device_, raw.size());
    for (size_t i = 0; i < kGuardBytes; i++)
      if (raw[i] != kGuardByte || raw[raw.size() - 1 - i] != kGuardByte) return false;
    return true;
  }

 private:
  size_t n_;
  Device device_;
  std::shared_ptr<Storage> storage_;
};

}  // namespace simclr::test
