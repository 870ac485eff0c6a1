// kernels/cuda/library_util.cuh - what the library paths of the CUDA backend
// (kernels/cuda/conv2d_cudnn.cu: cuDNN, kernels/cuda/linear_cublaslt.cu:
// cuBLASLt) share: a bounded LRU cache for their plans, stream-ordered
// scratch memory, pointer alignment, the device types of the element types,
// and an elementwise accumulate kernel. Real build only (nvcc): include it
// inside #ifndef SIMCLR_EMU, after kernels/cuda/common.cuh.
#pragma once
#ifdef SIMCLR_EMU
#error "kernels/cuda/library_util.cuh is for the real CUDA build only"
#endif
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <unordered_map>
#include <utility>

#include "engine/device.h"
#include "engine/dtype.h"
#include "kernels/cuda/common.cuh"

namespace simclr {
// engine/device_cuda.cpp: the engine's stream-ordered caching allocator
// (cudaMallocAsync on the device's engine stream, counted in cuda_peak_bytes).
void* cuda_alloc(size_t bytes, int device);
void cuda_free(void* p, size_t bytes, int device);
}  // namespace simclr

namespace simclr::gpu::lib {


// The largest power of two <= cap that divides the address (what a library
// may assume about a pointer when it picks vectorised kernels).
inline int64_t pointer_alignment(const void* p, int64_t cap) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t al = cap;
  while (al > 1 && (a % static_cast<uintptr_t>(al)) != 0) al /= 2;
  return al;
}

// Device memory for one call, ordered on `stream`: from the engine's caching
// allocator when `stream` is the engine's stream of `device` (so it counts in
// cuda_peak_bytes), else cudaMallocAsync on `stream` itself. Freed (stream-
// ordered, after the work queued so far) when it goes out of scope.
class StreamScratch {
 public:
  StreamScratch(size_t bytes, cudaStream_t stream, int device) : bytes_(bytes), stream_(stream), device_(device) {
    if (bytes_ == 0) return;
    engine_ = stream == static_cast<cudaStream_t>(cuda_current_stream(device));
    if (engine_) {
      p_ = cuda_alloc(bytes_, device_);
    } else {
      CUDA_CHECK(cudaMallocAsync(&p_, bytes_, stream_));
    }
  }
  ~StreamScratch() {
    if (!p_) return;
    if (engine_) {
      cuda_free(p_, bytes_, device_);
    } else {
      cudaFreeAsync(p_, stream_);  // no throw from a destructor
    }
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  void* get() const { return p_; }
  template <class T> T* as() const { return static_cast<T*>(p_); }

 private:
  size_t bytes_;
  cudaStream_t stream_;
  int device_;
  bool engine_ = false;
  void* p_ = nullptr;
};

// A plan-cache key: a fixed array of integers (device, kind, dtype, settings,
// shape, alignments), unused slots 0.
using Key = std::array<int64_t, 20>;
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the 64-bit words
    for (int64_t v : k) {
      h ^= static_cast<uint64_t>(v);
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

// A bounded least-recently-used cache of shared values. Not thread-safe: the
// callers hold their own lock. An evicted value stays alive while a caller
// still holds it.
template <class Value>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // The value for `key`; on a miss built by make() (a std::shared_ptr<Value>)
  // and inserted, evicting the least recently used entry beyond the capacity.
  // If make() throws, the cache is unchanged (the miss is still counted).
  template <class Make>
  std::shared_ptr<Value> get(const Key& key, Make&& make) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      hits_++;
      return it->second->second;
    }
    misses_++;
    std::shared_ptr<Value> v = make();
    order_.emplace_front(key, v);
    index_[key] = order_.begin();
    while (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return v;
  }
  void clear() {
    index_.clear();
    order_.clear();
    hits_ = misses_ = 0;
  }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  int64_t size() const { return static_cast<int64_t>(order_.size()); }
  int64_t capacity() const { return static_cast<int64_t>(capacity_); }

 private:
  size_t capacity_;
  std::list<std::pair<Key, std::shared_ptr<Value>>> order_;  // most recent first
  std::unordered_map<Key, typename std::list<std::pair<Key, std::shared_ptr<Value>>>::iterator, KeyHash> index_;
  int64_t hits_ = 0, misses_ = 0;
};

// dst[i] = dst[i] + src[i], in fp32, rounded once to D (an accumulating
// output for a library call that can only write).
template <class D>
__global__ void accumulate_kernel(D* __restrict__ dst, const D* __restrict__ src, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = from_float<D>(to_float(dst[i]) + to_float(src[i]));
}

template <class D>
void accumulate(D* dst, const D* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>(ceil_div(n, 256), 8192);
  launch_nobarrier(accumulate_kernel<D>, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, dst, src, n);
}

}  // namespace simclr::gpu::lib
