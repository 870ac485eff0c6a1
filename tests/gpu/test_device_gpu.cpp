// tests/gpu/test_device_gpu.cpp - the engine's CUDA services on a real GPU:
// tensors of every dtype through host -> device -> device -> host copies
// (bytes identical), zero-fill on the device, the caching allocator's
// accounting (live/peak) and its promise that a step which allocates and
// frees the same sizes in the same order gets the same addresses again (what
// CUDA-graph capture of a whole step relies on; engine/device.h), and the
// error for an op that mixes devices.
// Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "engine/device.h"
#include "tests/skip.h"
#include "ops/ops.h"
#include "engine/tensor.h"

using namespace simclr;


TEST_CASE("gpu device: every dtype survives host -> device -> device -> host", "[gpu][device]") {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::u8, DType::i32, DType::i64}) {
    INFO("dtype " << dtype_name(dt));
    Tensor host = Tensor::empty({3, 5, 7, 2}, dt);  // odd sizes: no accidental alignment
    auto* bytes = static_cast<unsigned char*>(host.data_ptr());
    for (size_t i = 0; i < host.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(rng());
    Tensor dev = host.to(Device::cuda(0));
    CHECK(dev.device().is_cuda());
    CHECK(dev.shape() == host.shape());
    Tensor dev2 = dev.clone();  // device -> device
    CHECK(dev2.data_ptr() != dev.data_ptr());
    Tensor back = dev2.to(Device::cpu());
    REQUIRE(back.nbytes() == host.nbytes());
    CHECK(std::memcmp(back.data_ptr(), host.data_ptr(), host.nbytes()) == 0);
  }
}

TEST_CASE("gpu device: zeros on the device read back as zeros", "[gpu][device]") {
  SKIP_WITHOUT_GPU();
  // Dirty the pool first so that a missing memset would show old bytes.
  {
    Tensor junk = Tensor::full({4099}, 3.5, DType::f32).to(Device::cuda(0));
    cuda_synchronize(0);
  }
  Tensor z = Tensor::zeros({4099}, DType::f32, Device::cuda(0));
  std::vector<float> v = z.to_floats();
  REQUIRE(v.size() == 4099u);
  for (float x : v) REQUIRE(x == 0.0f);
}

TEST_CASE("gpu device: live and peak bytes of the caching allocator", "[gpu][device]") {
  SKIP_WITHOUT_GPU();
  cuda_synchronize(0);
  cuda_reset_peak(0);
  const size_t base = cuda_peak_bytes(0);
  {
    Tensor a = Tensor::empty({3 << 20}, DType::u8, Device::cuda(0));
    CHECK(cuda_peak_bytes(0) >= base + (3u << 20));
  }
  cuda_synchronize(0);
  cuda_reset_peak(0);  // peak falls back to what is live now
  CHECK(cuda_peak_bytes(0) == base);
}

TEST_CASE("gpu device: the same allocation sequence gets the same addresses every step", "[gpu][device]") {
  SKIP_WITHOUT_GPU();
  // A miniature training step: activations allocated in order, some freed
  // early (temporaries), the rest freed at the end in reverse order.
  const std::vector<int64_t> sizes = {1 << 20, 4096, 3 << 18, 77, 1 << 22, 513, 1 << 16, 9000};
  auto step = [&] {
    std::vector<void*> ptrs;
    std::vector<Tensor> keep;
    for (size_t i = 0; i < sizes.size(); ++i) {
      Tensor t = Tensor::empty({sizes[i]}, DType::f32, Device::cuda(0));
      ptrs.push_back(t.data_ptr());
      if (i % 3 != 1) keep.push_back(t);  // every third one is a temporary, freed here
    }
    while (!keep.empty()) keep.pop_back();
    cuda_synchronize(0);
    return ptrs;
  };
  std::vector<void*> first = step();  // may grow the pool
  std::vector<void*> second = step();
  std::vector<void*> third = step();
  CHECK(second == third);
  for (size_t i = 0; i < sizes.size(); ++i)
    for (size_t j = 0; j < i; ++j) CHECK((second[i] != second[j] || i % 3 == 1 || j % 3 == 1));
  (void)first;
}

TEST_CASE("gpu device: an op mixing devices is a clear error", "[gpu][device]") {
  SKIP_WITHOUT_GPU();
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({2, 3}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("cuda"));
  CHECK_THROWS_WITH(Tensor::zeros({2}, DType::f32, Device::cuda(cuda_device_count())), Catch::Contains("does not exist"));
}
