// engine/dtype.h - element types, devices and the 16-bit float storage types.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/check.h"

namespace simclr {

enum class DType : uint8_t { f32, f64, bf16, f16, u8, i32, i64, COUNT };

constexpr int kNumDTypes = static_cast<int>(DType::COUNT);
size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);  // "f32", "fp32", "float32", "bf16", ...
inline bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

// bfloat16 / float16 as stored 16-bit patterns with round-to-nearest-even
// conversion. Same bit layout as CUDA's __nv_bfloat16 / __half, so buffers move
// between host and device unchanged.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet
      bits = static_cast<uint16_t>((u >> 16) | 0x40);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f);
  explicit operator float() const;
};

// Scalar type -> DType tag.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

// emu: a test device. Its memory is host memory, but every op on it runs the
// CUDA backend's own code (kernels/cuda/table.cu's rows, launchers, streams)
// through the kernel emulator (kernels/emu), and host access through
// Tensor::data<T>() is refused as on a GPU. It exists so that the CUDA code
// path of a whole training step runs in CI without a GPU; it is slow.
enum class DeviceKind : uint8_t { cpu, cuda, emu };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;
  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int k = 0) { return {DeviceKind::cuda, k}; }
  static Device emu() { return {DeviceKind::emu, 0}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  bool is_emu() const { return kind == DeviceKind::emu; }
  // The CUDA backend's code runs on it (a GPU, or the emulated device).
  bool runs_cuda_code() const { return kind != DeviceKind::cpu; }
  // Its memory is host memory (cpu, emu).
  bool host_memory() const { return kind != DeviceKind::cuda; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  std::string str() const;  // "cpu", "cuda:k" or "emu"
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1", "emu"
};

}  // namespace simclr
