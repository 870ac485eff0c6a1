// tests/test_tensor.cpp - tensor, dtype, allocator (and its debug mode), parameter store, npy,
// autograd tape basics and the error paths.
#include <cmath>

#include "engine/device.h"
#include "train/npy.h"
#include "engine/param.h"
#include "helpers.h"

using namespace simclr;
using simclr::test::rand_tensor;

TEST_CASE("tensor basics: shape, dtype, views, copies", "[tensor]") {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::f32);
  CHECK(t.numel() == 24);
  CHECK(t.ndim() == 3);
  CHECK(t.nbytes() == 96);
  CHECK(t.str() == "f32[2, 3, 4] on cpu");
  CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64 == 0);
  for (int i = 0; i < 24; i++) t.data<float>()[i] = static_cast<float>(i);
  Tensor v = t.view({6, 4});
  CHECK(v.data_ptr() == t.data_ptr());
  Tensor s = v.slice0(2, 4);
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.at(0) == 8.0);
  Tensor c = t.clone();
  c.data<float>()[0] = 100;
  CHECK(t.at(0) == 0.0);
  Tensor d = t.to(DType::f64);
  CHECK(d.dtype() == DType::f64);
  CHECK(d.at(23) == 23.0);
  Tensor f = Tensor::full({3}, 2.5, DType::bf16);
  CHECK(f.at(2) == 2.5);
}

TEST_CASE("tensor errors name the problem", "[tensor]") {
  Tensor t = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH(t.data<double>(), Catch::Contains("accessed as f64"));
  CHECK_THROWS_WITH(t.view({4, 2}), Catch::Contains("element count differs"));
  CHECK_THROWS_WITH(Tensor().numel(), Catch::Contains("undefined tensor"));
  CHECK_THROWS_WITH((Shape{1, 2, 3, 4, 5, 6}), Catch::Contains("max 5"));
  CHECK_THROWS_WITH(dtype_from_name("f8"), Catch::Contains("unknown dtype 'f8'"));
  CHECK_THROWS_WITH(Device::parse("tpu"), Catch::Contains("unknown device 'tpu'"));
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), c = Tensor::zeros({2, 3}, DType::f64);
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("expected shape [2, 3]"));
  CHECK_THROWS_WITH(add(a, c), Catch::Contains("dtype mismatch"));
  CHECK_THROWS_WITH(relu(Tensor::zeros({2}, DType::i32)), Catch::Contains("relu is not supported on cpu for dtype i32"));
  CHECK_THROWS_WITH(linear(a, Tensor::zeros({4, 2}), Tensor()), Catch::Contains("has 3 features"));
  if (!cuda_available()) {
    CHECK_THROWS(Tensor::zeros({2}, DType::f32, Device::cuda(0)));
  }
  // Wrong device: a non-owning tensor labelled cuda:0 (never dereferenced)
  // next to a CPU one. The device check comes before any memory is touched.
  float dummy[6] = {};
  Tensor g = Tensor::wrap(dummy, {2, 3}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH(add(a, g), Catch::Contains("add: tensors on different devices") && Catch::Contains("cuda:0"));
  CHECK_THROWS_WITH(add_relu(a, g), Catch::Contains("add_relu: tensors on different devices"));
}

TEST_CASE("bf16 and f16 round to nearest even", "[tensor]") {
  CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
  CHECK(bf16(1.0f).bits == 0x3f80);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0)
  CHECK(static_cast<float>(bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(static_cast<float>(bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  CHECK(f16(1.0f).bits == 0x3c00);
  CHECK(f16(-2.0f).bits == 0xc000);
  CHECK(f16(65504.0f).bits == 0x7bff);
  CHECK(f16(1e6f).bits == 0x7c00);
  CHECK(static_cast<float>(f16(0.333333f)) == Approx(0.33325195f));
  CHECK(static_cast<float>(f16(6e-8f)) == Approx(5.96046448e-08f));  // smallest subnormal
  for (float v : {0.1f, -3.75f, 1000.5f, 1e-3f}) CHECK(static_cast<float>(f16(v)) == Approx(v).epsilon(1e-3));
}

TEST_CASE("cpu allocator counts live bytes", "[tensor]") {
  size_t before = cpu_alloc_stats().live_bytes;
  {
    Tensor t = Tensor::empty({1000}, DType::f64);
    CHECK(cpu_alloc_stats().live_bytes == before + 8000);
  }
  CHECK(cpu_alloc_stats().live_bytes == before);
}

TEST_CASE("cpu allocator debug mode: NaN-filled blocks, guards checked on demand and on free", "[tensor][alloc]") {
  REQUIRE_FALSE(cpu_alloc_debug());  // off by default
  Tensor plain = Tensor::empty({3}, DType::f32);  // allocated while off: stays a plain block
  {
    CpuAllocDebug debug;
    CHECK(cpu_alloc_debug());
    const size_t before = cpu_alloc_stats().live_bytes;
    Tensor t = Tensor::empty({5}, DType::f64);  // 40 bytes: the after-guard starts at byte 40
    CHECK(cpu_alloc_stats().live_bytes == before + 40);  // the statistics count the payload only
    CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64 == 0);
    for (int64_t i = 0; i < 5; i++) CHECK(std::isnan(t.at(i)));
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) CHECK(std::isnan(Tensor::empty({1}, dt).at(0)));
    CHECK(Tensor::zeros({4}).at(3) == 0.0);  // zeros still zero
    CHECK(cpu_alloc_check() >= 1);
    // one element past the end (an off-by-one write): the live check names it
    auto* bytes = static_cast<unsigned char*>(t.data_ptr());
    const unsigned char keep = bytes[40];
    bytes[40] = 0;
    CHECK_THROWS_WITH(cpu_alloc_check(), Catch::Contains("live block of 40 bytes: guard after it broken at byte 40"));
    bytes[40] = keep;
    CHECK_NOTHROW(cpu_alloc_check());
    // one byte before the start
    bytes[-1] = 0;
    CHECK_THROWS_WITH(cpu_alloc_check(), Catch::Contains("guard before it broken at byte -1"));
    bytes[-1] = 0xA5;
    // a block freed with a broken guard is reported by the next check, once
    {
      Tensor u = Tensor::empty({3}, DType::f32);  // 12 bytes: the guard runs to byte 127
      static_cast<unsigned char*>(u.data_ptr())[100] = 1;
    }
    CHECK_THROWS_WITH(cpu_alloc_check(), Catch::Contains("freed block of 12 bytes: guard after it broken at byte 100"));
    CHECK_NOTHROW(cpu_alloc_check());
    // the plain block is freed normally inside the scope
    plain = Tensor();
  }
  CHECK_FALSE(cpu_alloc_debug());
  CHECK(cpu_alloc_check() == 0);  // every debug block went away with its tensor
}

TEST_CASE("blas is OpenBLAS with OpenMP", "[tensor]") {
  std::string info = blas_info();
  INFO(info);
  CHECK(info.find("OpenBLAS") != std::string::npos);
  CHECK(info.find("OpenMP") != std::string::npos);
}

TEST_CASE("parameter store: contiguous values and grads, names, flags", "[param]") {
  ParamStore ps;
  ps.add("conv1.weight", {4, 3, 3, 2}, kTrainable);
  ps.add("bn1.weight", {4}, kTrainable | kIsBN);
  ps.add("bn1.bias", {4}, kTrainable | kIsBN | kIsBias);
  ps.add("bn1.running_mean", {4}, kIsBuffer);
  CHECK_THROWS_WITH(ps.add("bn1.weight", {4}, kTrainable), Catch::Contains("duplicate parameter name 'bn1.weight'"));
  ps.materialize();
  CHECK(ps.values().numel() == 72 + 8);
  CHECK(ps.buffers().numel() == 4);
  Param& w = ps.get("conv1.weight");
  CHECK(w.value.data_ptr() == ps.values().data_ptr());
  CHECK(ps.get("bn1.weight").value.data<float>() == ps.values().data<float>() + 72);
  CHECK(ps.get("bn1.bias").excluded_from_adaptation());
  CHECK_FALSE(w.excluded_from_adaptation());
  // backward accumulates straight into the flat gradient buffer
  Tensor x = ps["bn1.weight"];
  Tensor r = Tensor::full({4}, 3.0);
  backward(sum_product(x, r));
  CHECK(ps.grads().at(72) == 3.0);
  CHECK(ps.get("bn1.weight").grad.at(3) == 3.0);
  ps.zero_grad();
  CHECK(ps.grads().at(72) == 0.0);
  CHECK_THROWS_WITH(ps.get("fc.weight"), Catch::Contains("no parameter named 'fc.weight'"));
}

TEST_CASE("autograd: tape order, no-grad scope, accumulation", "[autograd]") {
  Tensor x = rand_tensor({3, 4}, 1).set_requires_grad();
  Tensor w = rand_tensor({2, 4}, 2).set_requires_grad();
  {
    NoGrad ng;
    Tensor y = linear(x, w, Tensor());
    CHECK_FALSE(y.requires_grad());
    CHECK(tape_size() == 0);
  }
  Tensor y = relu(linear(x, w, Tensor()));
  CHECK(tape_ops() == std::vector<std::string>{"linear", "relu"});
  Tensor y2 = add(y, y);  // y used twice: gradients accumulate
  Tensor loss = sum_product(y2, Tensor::full({3, 2}, 1.0, DType::f64));
  backward(loss);
  CHECK(tape_size() == 0);
  CHECK(y.grad().at(0) == 2.0);
  CHECK_THROWS_WITH(backward(y), Catch::Contains("one element"));
}

TEST_CASE("npy round trip and errors", "[npy]") {
  std::string dir = simclr::test::scratch_dir("npy");
  Tensor t = rand_tensor({3, 5}, 7, -1, 1, DType::f32);
  write_npy(dir + "/a.npy", t);
  Tensor u = read_npy(dir + "/a.npy");
  CHECK(u.shape() == t.shape());
  CHECK(u.dtype() == DType::f32);
  CHECK(std::memcmp(u.data_ptr(), t.data_ptr(), t.nbytes()) == 0);
  CHECK_THROWS_WITH(read_npy(dir + "/missing.npy"), Catch::Contains("missing.npy"));
  FILE* f = std::fopen((dir + "/bad.npy").c_str(), "wb");
  std::fputs("hello", f);
  std::fclose(f);
  CHECK_THROWS_WITH(read_npy(dir + "/bad.npy"), Catch::Contains("not a .npy file"));

  // Headers as other writers lay them out (version 1, no padding rules
  // enforced when reading), each followed by `data_bytes` zero bytes.
  auto write_raw = [&](const std::string& name, const std::string& header, size_t data_bytes) {
    std::string out = "\x93NUMPY";
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xFF);
    out += static_cast<char>(header.size() >> 8);
    out += header;
    out.append(data_bytes, '\0');
    FILE* g = std::fopen((dir + "/" + name).c_str(), "wb");
    std::fwrite(out.data(), 1, out.size(), g);
    std::fclose(g);
    return dir + "/" + name;
  };
  Tensor v = read_npy(write_raw("tight.npy", "{'descr':'<f8','fortran_order':False,'shape':(2,3)}\n", 48));
  CHECK(v.shape() == Shape({2, 3}));
  CHECK(v.dtype() == DType::f64);
  CHECK(read_npy(write_raw("vec.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }\n", 40)).shape() ==
        Shape({5}));
  CHECK(read_npy(write_raw("scalar.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", 4)).numel() == 1);
  CHECK_THROWS_WITH(read_npy(write_raw("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16)),
                    Catch::Contains("Fortran-order"));
  CHECK_THROWS_WITH(read_npy(write_raw("noshape.npy", "{'descr': '<f4', 'fortran_order': False}", 4)),
                    Catch::Contains("no shape in header"));
  CHECK_THROWS_WITH(read_npy(write_raw("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4)),
                    Catch::Contains("too large"));
  CHECK_THROWS_WITH(read_npy(write_raw("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8)),
                    Catch::Contains("truncated data"));
}
