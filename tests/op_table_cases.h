// tests/op_table_cases.h - THE op test table (in the manner of ggml's
// test-backend-ops): one row per op and case. A row names the op (the Op enum
// of engine/op_table.h), the case, the input shapes (odd sizes: C not a
// multiple of 8, 7x7 planes, batch 1, two views), the options, the reduced
// precision under test, and for every mode that runs it a tolerance with the
// reason it has that size. A mode whose tolerance has no reason does not run
// the row.
//
// Modes (each a Catch2 test iterating the rows):
//   ref   float64 forward against an independent naive loop   tests/test_op_table.cpp
//   grad  (a) float64 central-difference gradients             tests/test_op_table.cpp
//   low   (b) `dtype` against float64 on the CPU, forward and gradients
//   fused the fused op against its composite of primitive ops (float64)
//   dev   (c) the CUDA kernel in `dtype` run by the emulator against the
//         float64 CPU reference                                tests/emu/test_op_table_emu.cpp
//         (d) the same on a GPU, and the op on CUDA tensors     tests/gpu/test_op_table_gpu.cpp
//         (e) the bf16 dev rows of the ops the CPU backend has in bf16
//         (train.precision bf16 on the CPU) run there, same tolerances: its
//         bf16 kernels keep the CUDA twins' convention    tests/test_op_table.cpp
// CPU modes run with the allocator's debug mode on (engine/device.h: new
// blocks NaN-filled, guard bytes checked after every op); the kernel modes
// put guard bytes around every buffer and poison outputs and workspaces with
// NaN (tests/guarded.h). tests/test_op_table.cpp fails when an op of the enum
// has no row, a mode has no row for an op, or a (op, dtype) that
// supports(cuda, ...) claims has no dev row.
//
// Tolerances are normwise: max_i |got_i - want_i| / max_i |want_i| (a scalar
// output: plain relative error). `fwd` bounds the outputs, `grad` every
// gradient; for NT-Xent kernel rows `fwd` bounds a similarity (the lse is
// held to fwd/τ, the loss to 2·fwd/τ, tests/ntxent_case.h).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/op_table.h"
#include "kernels/registry.h"
#include "engine/tensor.h"

namespace simclr::test {

struct Tol {
  double fwd = 0, grad = 0;
  const char* why = nullptr;  // null: the mode does not run this row
  bool on() const { return why != nullptr; }
};

struct OpOptions {
  int stride = 1, pad = 0, kernel = 3;  // conv2d (kernel size: the weight's), max_pool2d
  bool bias = true;                     // linear
  bool training = true, relu = false, affine = true;  // batch_norm
  bool running = false;                 // batch_norm training: also update running statistics
  bool f32_buffers = true;              // batch_norm running statistics f32 (as the model keeps them), else x's dtype
  double scale = -2.5;                  // scale
  double eps = 1e-12;                   // l2_normalize
  bool tiny_row = false;                // l2_normalize: row 1 shorter than eps (the clamp)
  DType labels = DType::i64;            // cross_entropy
  double tau = 0.1;                     // ntxent
  int ksplit = 0, ranks = 1;            // ntxent CUDA kernels: key split (0 auto), simulated ranks
  bool emulate = true;                  // dev rows: false = GPU only (minutes under the emulator)
  DType cast_to = DType::f32;           // cast: the row applies cast(cast(x, cast_to), x's dtype), a round trip
};

struct OpCase {
  Op op;
  std::string name;
  std::vector<Shape> shapes;  // the op's tensor inputs in order (bias, BN parameters, labels: derived)
  OpOptions opt;
  DType dtype = DType::f32;   // the reduced precision compared with float64 (low, dev)
  Tol ref, grad, low, fused, dev;
};

// One row: the tolerances of the modes that do not run it stay empty.
inline OpCase row(Op op, std::string name, std::vector<Shape> shapes, OpOptions opt, DType dtype, Tol ref, Tol grad,
                  Tol low, Tol fused = {}, Tol dev = {}) {
  return OpCase{op, std::move(name), std::move(shapes), opt, dtype, ref, grad, low, fused, dev};
}

// The seed of row i's inputs (every mode and suite draws the same inputs for a row).
inline uint64_t row_seed(size_t i) { return 1000 + 17 * i; }

// ------------------------------------------------------------------ tolerances and their reasons
namespace tol {
// (a) every gradient check
inline constexpr Tol kFd{0, 1e-6,
                         "float64 central differences, h = 1e-6: truncation h²|L'''|/6 ~ 1e-12 and rounding "
                         "2^-53|L|/h ~ 1e-10 relative; 1e-6 keeps 10^4 of margin and fails any wrong term (O(1))"};
// ref: the naive loop does the same arithmetic
inline constexpr Tol kExact{0, 0, "the same single rounding per element as the naive loop: bit-identical"};
inline constexpr Tol kSum{1e-14, 0,
                          "a double sum of at most a few hundred terms in another order than the naive loop: "
                          "n·2^-53 relative to the terms (observed <= 1.2e-15, batch norm's variance)"};
inline constexpr Tol kConvRef{1e-13, 0,
                              "double GEMM dot products of K <= 1152 terms in another order (blocked) than the "
                              "7-deep loop: K·2^-53 ~ 1e-13 relative to the largest output (observed <= 4.5e-16)"};
// low: f32 against f64
inline constexpr Tol kF32Elem{1e-7, 1e-7,
                              "one f32 rounding of the input (and of the cotangent): 2^-24 = 6e-8 relative "
                              "(observed <= 3e-8)"};
inline constexpr Tol kF32Add{3e-7, 3e-7,
                             "a, b and a+b each rounded once to f32: <= 2^-24(|a|+|b|+|a+b|) per element, "
                             "normwise against max|a+b| (~1.5-2 here): <= 2.4e-7 (observed <= 8e-8)"};
inline constexpr Tol kF32Dot{1e-6, 2e-7,
                             "f32 inputs, double accumulation: 2·2^-24 per term, amplified by the cancellation "
                             "in the sum (Σ|ar| / |Σar| up to ~15 here; observed <= 8.4e-8); the gradient is the "
                             "other factor (or 1/n) rounded once, times the rounded cotangent (observed 7e-8)"};
inline constexpr Tol kF32Scale{3e-7, 3e-7,
                               "x, the factor and the product each rounded once to f32: <= 3·2^-24 relative "
                               "(observed 1.1e-7)"};
inline constexpr Tol kF32Gemm{1e-5, 1e-5,
                              "f32 sums of up to K ~ 1152 products (GEMM, oneDNN or im2col), ~sqrt(K)·2^-24 "
                              "(observed <= 3e-7 forward, 2.4e-6 for dw summed over 8000 products); 1e-5 "
                              "still fails any wrong tap (O(1))"};
inline constexpr Tol kF32Norm{1e-6, 1e-6,
                              "f32 inputs, double row sums, a few f32 roundings per element (observed <= 1.3e-7)"};
inline constexpr Tol kF32Bn{2e-6, 1e-5,
                            "forward: a few f32 roundings per element; backward: f32 sums over the rows and the "
                            "cancellation in dy - mean(dy) - x̂·mean(dy·x̂) (observed <= 4.2e-7 forward, 6.9e-7 "
                            "gradients)"};
inline constexpr Tol kF32Ntxent{1e-6, 1e-6,
                                "f32 z, double sums in the kernel: each logit s/τ carries ~2^-24/τ absolute "
                                "(1.2e-6 at τ = 0.05, but errors of different sign average out in the loss, "
                                "~|loss| >= 1); observed <= 6.5e-8 forward, 1.2e-7 gradient"};
// fused
inline constexpr Tol kFusedExact{0, 0,
                                 "the same additions and comparisons as relu(add(a, b)) in the same order: "
                                 "bit-identical values and gradients"};
inline constexpr Tol kFusedBn{1e-15, 1e-13,
                              "the same BN arithmetic with the ReLU applied in the same sweep; backward "
                              "reductions of dy·[y > 0] in the fused kernel's order (a few ulps)"};
inline constexpr Tol kFusedNtxent{1e-13, 1e-13,
                                  "float64 throughout; the composite's softmax sums, ẑẑᵀ by GEMM and its "
                                  "backward run in other orders than the fused reference: a few hundred ulps "
                                  "at most (observed <= 1.3e-15)"};
// dev: batch norm, L2-normalise, cross-entropy CUDA kernels (kernels/cuda/batchnorm.cu,
// norm_loss.cu: fp32 arithmetic, BN sums in float over <= 16 rows then in double; the rounded
// inputs are part of the error, as in the low mode)
inline constexpr Tol kDevF32Bn{1e-6, 2e-6,
                               "f32 inputs (2^-24 each); forward a few f32 roundings per element; backward "
                               "f32 products summed over <= 16 rows, then double, and the cancellation in "
                               "dy - mean(dy) - x̂·mean(dy·x̂) (observed <= 1.7e-7 forward, 1.9e-7 gradients)"};
inline constexpr Tol kDevF32Norm{1e-6, 1e-6,
                                 "f32 inputs (2^-24 each); row sums in float over D, K <= 13 terms (<= 13·2^-24 "
                                 "relative) and a few f32 roundings per element (observed <= 1.1e-7 forward, "
                                 "1.5e-7 gradients)"};
inline constexpr Tol kDevBf16Bn{2e-2, 3e-2,
                                "bf16 x, γ, β, cotangent (2^-9 relative each), mean and invstd stored as bf16 "
                                "(2^-9), outputs and gradients rounded to bf16 (2^-9): a few times 2^-9 "
                                "(observed <= 6.1e-3 forward, 6.8e-3 gradients)"};
inline constexpr Tol kDevBf16Norm{1e-2, 3e-2,
                                  "bf16 inputs and outputs (2^-9 relative each), fp32 arithmetic; lse and the loss "
                                  "rounded to bf16, the CE gradient softmax - onehot from the bf16 lse "
                                  "(observed <= 3.1e-3 forward, 9.6e-3 gradients)"};
// dev: NT-Xent CUDA kernels (tests/ntxent_case.h derives these)
inline constexpr Tol kDevBf16{0x1p-8, 1.5e-2,
                              "bf16 ẑ (2^-9 relative per element) moves a similarity by <= 2^-8 "
                              "(Cauchy-Schwarz), a logit by 2^-8/τ, lse (1-Lipschitz) as much, ℓ twice; the "
                              "gradient (bf16 G and ẑ in the product) within 1.5e-2 (observed <= 3.3e-3)"};
inline constexpr Tol kDevF32{0x1p-15, 5e-5,
                             "fp32 as bf16x3: ẑ to ~2^-17, products to ~3·2^-18 per similarity, logits within "
                             "2^-15/τ; the gradient within 5e-5 of its largest entry (observed <= 6e-6)"};
// dev: the elementwise and pooling CUDA kernels (kernels/cuda/elementwise.cu, pool.cu) against
// float64 on the unrounded inputs. f32: the kernels do the CPU's f32 arithmetic (the reductions
// in double), so the low mode's reasons carry over; bf16: inputs, cotangent and every stored
// result rounded to bf16 (8 significant bits: 2^-8 relative per rounding), arithmetic in f32.
inline constexpr Tol kDevF32Elem{1e-7, 1e-7,
                                 "relu selects exactly: only the input and the cotangent are rounded to f32, "
                                 "2^-24 = 6e-8 relative (observed <= 3e-8)"};
inline constexpr Tol kDevF32MaxPool{1e-7, 2e-7,
                                    "forward: the winner of distinct inputs, rounded once to f32 (2^-24); "
                                    "backward: up to 4 (9 overlapping) rounded cotangents added in f32: "
                                    "2^-24(Σ|dy| + |dx|), normwise <= 3·2^-24 (observed <= 7.2e-8)"};
inline constexpr Tol kDevF32Add{3e-7, 3e-7,
                                "a, b and a+b each rounded once to f32 (the kernel adds in f32 like the CPU): "
                                "<= 2^-24(|a|+|b|+|a+b|), normwise <= 2.4e-7 (observed <= 8e-8)"};
inline constexpr Tol kDevF32Dot{1e-6, 2e-7,
                                "the kernels add in double (a fixed tree order instead of index order: n·2^-53, "
                                "invisible at f32) after rounding the inputs to f32: as kF32Dot, 2·2^-24 per term "
                                "amplified by the cancellation in the sum (observed <= 8.4e-8, gradient 7.3e-8)"};
inline constexpr Tol kDevF32Scale{3e-7, 3e-7,
                                  "x, float(s) and the product each rounded once to f32, as on the CPU: "
                                  "<= 3·2^-24 relative (observed <= 1.1e-7)"};
inline constexpr Tol kDevF32Gap{2e-6, 2e-7,
                                "forward: f32 sums over HW <= 49 pixels (the CPU sums in double), "
                                "(HW-1)·2^-24·Σ|x|/HW worst case, normwise against max|y| (<= 4x below mean|x| "
                                "here): <= 2e-6 (observed <= 4.5e-7); backward: dy, 1/HW and dy·(1/HW) rounded: "
                                "3·2^-24"};
inline constexpr Tol kDevBf16Elem{0x1p-8, 0x1p-8,
                                  "relu selects exactly: the input, or the cotangent, rounded once to bf16: "
                                  "<= 2^-8 relative (observed <= 2.1e-3)"};
inline constexpr Tol kDevBf16MaxPool{0x1p-8, 1.2e-2,
                                     "forward: the winner, rounded once (2^-8; the row's inputs stay distinct in "
                                     "bf16: spacing 2/numel > 2^-8, the bf16 spacing below 1); backward: rounded "
                                     "cotangents (2^-8 each) gathered in f32 and stored (2^-8): 2^-8(Σ|dy| + |dx|), "
                                     "normwise <= 3·2^-8 (observed <= 4.2e-3)"};
inline constexpr Tol kDevBf16Add{1.1e-2, 4e-3,
                                 "a, b rounded to bf16 (2^-8 each), a+b in f32, rounded at the store (2^-8): "
                                 "<= 2^-8(|a|+|b|+|a+b|), normwise against max|a+b| (~1.5-2, |a|,|b| <= 1): "
                                 "<= 2^-8·4/1.5 = 1.04e-2 (observed <= 5.7e-3); gradient: dy rounded, 2^-8"};
inline constexpr Tol kDevBf16Dot{6e-2, 1.2e-2,
                                 "forward: a and r rounded to bf16 (2·2^-8 per term), summed in double, amplified "
                                 "by the cancellation in the sum (up to ~15, kF32Dot) and rounded once: "
                                 "15·2^-7 + 2^-8 would be 0.12, 6e-2 for these rows (observed <= 7.5e-3); "
                                 "gradient: the cotangent, r (or 1/n) and the stored result: 3·2^-8"};
inline constexpr Tol kDevBf16Scale{8e-3, 8e-3,
                                   "x (or dy) rounded to bf16, s to f32 (2^-24), the product at the store: "
                                   "2·2^-8 = 7.8e-3 relative per element (observed <= 4.9e-3)"};
inline constexpr Tol kDevBf16Gap{2e-2, 8e-3,
                                 "forward: the inputs rounded to bf16 (2^-8 of each |x|), summed in f32, the mean "
                                 "stored (2^-8): 2^-8(mean|x| + |y|), normwise against max|y| (<= 4x below "
                                 "mean|x| here): <= 5·2^-8 (observed <= 2.5e-3); backward: dy rounded, "
                                 "dy·(1/HW) stored: 2·2^-8 (observed <= 4.2e-3)"};

// dev: our CUDA GEMM / implicit-GEMM convolution kernels (kernels/cuda/gemm_tile.cuh)
inline constexpr Tol kDevGemmF32{1e-5, 1e-5,
                                 "fp32 products summed in fp32 in tile order (K <= 1152 terms here, split-K "
                                 "partials added in a fixed order): γ_K·Σ|terms| ~ sqrt(K)·2^-24 normwise "
                                 "(as the CPU's f32 GEMM); 1e-5 still fails any wrong tap (O(1))"};
inline constexpr Tol kDevGemmBf16{2e-2, 2e-2,
                                  "bf16 inputs (and cotangent) rounded to 2^-9 relative each: a product carries "
                                  "<= 2^-8, partly cancelling in the sum (normwise ~2^-8 = 3.9e-3 typical, a few "
                                  "times that at the largest entry), fp32 accumulation, one bf16 rounding of "
                                  "the output (2^-9); a wrong tap is O(1)"};

// cast (kernels/cast.h): the rows apply the round trip cast(cast(x, to), x's dtype)
inline constexpr Tol kCastFd{0, 5e-2,
                             "the round trip f64 -> f32 -> f64 moves each value by <= 2^-25|x| (|x| < 1): a "
                             "central difference with h = 1e-6 carries <= 2·2^-25/(2h) = 3e-2 of the unit "
                             "derivative (observed 1.5e-2); a missing, doubled or negated gradient is off by >= 1"};
inline constexpr Tol kCastExact{0, 0,
                                "every path rounds the same value once to f32, then to bf16 (RNE) and widens "
                                "exactly; the cotangent likewise: bit-identical to float64 through the same "
                                "roundings"};
inline constexpr Tol kDevCastBf16{0x1p-8, 0x1p-8,
                                  "the bf16 input (and cotangent) is x rounded to bf16, <= 2^-9 relative per "
                                  "element (through f32: + 2^-25); widening to f32 and back is exact: <= 2^-8 "
                                  "with margin (observed 1.95e-3 = 2^-9), a wrong element is O(1)"};

// The device tolerance of (op, dtype) for the rows that do not set one (an
// op listed here has a CUDA twin, kernels/cuda/table.cu): every f32 row of
// the op runs in mode (c)/(d) with the f32 tolerance, and once more in bf16.
inline Tol device_tolerance(Op op, DType dt) {
  switch (op) {
    case Op::conv2d:
    case Op::linear: return dt == DType::bf16 ? kDevGemmBf16 : kDevGemmF32;
    case Op::relu: return dt == DType::bf16 ? kDevBf16Elem : kDevF32Elem;
    case Op::max_pool2d: return dt == DType::bf16 ? kDevBf16MaxPool : kDevF32MaxPool;
    case Op::add:
    case Op::add_relu: return dt == DType::bf16 ? kDevBf16Add : kDevF32Add;
    case Op::sum_product:
    case Op::mean: return dt == DType::bf16 ? kDevBf16Dot : kDevF32Dot;
    case Op::scale: return dt == DType::bf16 ? kDevBf16Scale : kDevF32Scale;
    case Op::global_avg_pool: return dt == DType::bf16 ? kDevBf16Gap : kDevF32Gap;
    default: return {};
  }
}
}  // namespace tol

// ------------------------------------------------------------------ the table
inline const std::vector<OpCase>& op_cases() {
  using namespace tol;
  using S = std::vector<Shape>;
  static const std::vector<OpCase> rows = [] {
    std::vector<OpCase> r = {
        // ---- elementwise
        row(Op::relu, "4x5, half negative", S{{4, 5}}, {}, DType::f32, kExact, kFd, kF32Elem),
        row(Op::relu, "2x7x7x13 (7x7, C = 13)", S{{2, 7, 7, 13}}, {}, DType::f32, kExact, kFd, kF32Elem),
        row(Op::relu, "batch 1, 1x3x3x5", S{{1, 3, 3, 5}}, {}, DType::f32, kExact, kFd, kF32Elem),
        row(Op::add, "3x4", S{{3, 4}, {3, 4}}, {}, DType::f32, kExact, kFd, kF32Add),
        row(Op::add, "2x7x7x13", S{{2, 7, 7, 13}, {2, 7, 7, 13}}, {}, DType::f32, kExact, kFd, kF32Add),
        row(Op::add, "batch 1, 1x9", S{{1, 9}, {1, 9}}, {}, DType::f32, kExact, kFd, kF32Add),
        row(Op::add_relu, "3x4", S{{3, 4}, {3, 4}}, {}, DType::f32, kExact, kFd, kF32Add, kFusedExact),
        row(Op::add_relu, "2x7x7x13 (a residual block's shape)", S{{2, 7, 7, 13}, {2, 7, 7, 13}}, {}, DType::f32,
            kExact, kFd, kF32Add, kFusedExact),
        row(Op::add_relu, "batch 1, 1x3x3x5", S{{1, 3, 3, 5}, {1, 3, 3, 5}}, {}, DType::f32, kExact, kFd, kF32Add,
            kFusedExact),
        row(Op::sum_product, "3x4", S{{3, 4}}, {}, DType::f32, kSum, kFd, kF32Dot),
        row(Op::sum_product, "2x7x7x3", S{{2, 7, 7, 3}}, {}, DType::f32, kSum, kFd, kF32Dot),
        row(Op::mean, "3x4", S{{3, 4}}, {}, DType::f32, kSum, kFd, kF32Dot),
        row(Op::mean, "batch 1, 1x7x7x5", S{{1, 7, 7, 5}}, {}, DType::f32, kSum, kFd, kF32Dot),
        row(Op::mean, "one element", S{{1}}, {}, DType::f32, kSum, kFd, kF32Dot),
        row(Op::scale, "3x4 by -2.5", S{{3, 4}}, {.scale = -2.5}, DType::f32, kExact, kFd, kF32Scale),
        row(Op::scale, "2x7x7x3 by 0.3", S{{2, 7, 7, 3}}, {.scale = 0.3}, DType::f32, kExact, kFd, kF32Scale),
        // ---- dense
        row(Op::linear, "5x7 -> 4, bias", S{{5, 7}, {4, 7}}, {}, DType::f32, kSum, kFd, kF32Gemm),
        row(Op::linear, "5x7 -> 4, no bias", S{{5, 7}, {4, 7}}, {.bias = false}, DType::f32, kSum, kFd, kF32Gemm),
        row(Op::linear, "batch 1, 13 -> 3", S{{1, 13}, {3, 13}}, {}, DType::f32, kSum, kFd, kF32Gemm),
        row(Op::linear, "9x21 -> 10", S{{9, 21}, {10, 21}}, {}, DType::f32, kSum, kFd, kF32Gemm),
        // ---- convolution: x [N,H,W,C], w [O,kH,kW,C]
        row(Op::conv2d, "3x3 same", S{{2, 5, 6, 3}, {4, 3, 3, 3}}, {.stride = 1, .pad = 1}, DType::f32, kConvRef, kFd,
            kF32Gemm),
        row(Op::conv2d, "batch 1, 3x3 same", S{{1, 5, 5, 2}, {3, 3, 3, 2}}, {.stride = 1, .pad = 1}, DType::f32,
            kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "3x3/2, odd sizes", S{{2, 7, 5, 2}, {3, 3, 3, 2}}, {.stride = 2, .pad = 1}, DType::f32,
            kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "batch 1, 3x3/2, no padding", S{{1, 6, 7, 3}, {2, 3, 3, 3}}, {.stride = 2, .pad = 0},
            DType::f32, kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "1x1 (direct GEMM)", S{{3, 4, 5, 3}, {4, 1, 1, 3}}, {}, DType::f32, kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "1x1/2 (downsample shortcut, im2col)", S{{2, 5, 5, 3}, {2, 1, 1, 3}}, {.stride = 2},
            DType::f32, kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "batch 1, 5x3 pad 2 stride 2", S{{1, 7, 6, 2}, {2, 5, 3, 2}}, {.stride = 2, .pad = 2},
            DType::f32, kConvRef, kFd, kF32Gemm),
        row(Op::conv2d, "batch 1, 7x7, C = 13", S{{1, 7, 7, 13}, {5, 3, 3, 13}}, {.stride = 1, .pad = 1}, DType::f32,
            kConvRef, kFd, kF32Gemm),
        // forward and f32 only (too large for finite differences)
        row(Op::conv2d, "batch 1, 3x3/2, 7x5", S{{1, 7, 5, 2}, {3, 3, 3, 2}}, {.stride = 2, .pad = 1}, DType::f32,
            kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "1x1, 6x6x4", S{{3, 6, 6, 4}, {5, 1, 1, 4}}, {}, DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "1x1/2, 7x7", S{{2, 7, 7, 3}, {2, 1, 1, 3}}, {.stride = 2}, DType::f32, kConvRef, {},
            kF32Gemm),
        row(Op::conv2d, "batch 1, 5x3/2 pad 2, 9x8", S{{1, 9, 8, 3}, {4, 5, 3, 3}}, {.stride = 2, .pad = 2},
            DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "3x3, no padding", S{{2, 4, 4, 3}, {2, 3, 3, 3}}, {}, DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "7x7/2 pad 3 (ImageNet stem), 11x10", S{{3, 11, 10, 3}, {4, 7, 7, 3}},
            {.stride = 2, .pad = 3}, DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "3x3/2, 9x9x5 (f32 gradients)", S{{3, 9, 9, 5}, {6, 3, 3, 5}}, {.stride = 2, .pad = 1},
            DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "3x3, 5x40x40x8 (chunks, thread split)", S{{5, 40, 40, 8}, {4, 3, 3, 8}},
            {.stride = 1, .pad = 1}, DType::f32, kConvRef, {}, kF32Gemm),
        row(Op::conv2d, "1x1, 4x30x30x16 (direct, threaded)", S{{4, 30, 30, 16}, {8, 1, 1, 16}}, {}, DType::f32,
            kConvRef, {}, kF32Gemm),
        // ---- pooling (max pool inputs: distinct values, far apart against h)
        row(Op::max_pool2d, "3x3/2 pad 1 (the stem pool), 7x7", S{{2, 7, 7, 3}}, {.stride = 2, .pad = 1, .kernel = 3},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::max_pool2d, "batch 1, 3x3/2 pad 1, 8x6", S{{1, 8, 6, 2}}, {.stride = 2, .pad = 1, .kernel = 3},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::max_pool2d, "2x2/2, no padding, 6x5", S{{2, 6, 5, 2}}, {.stride = 2, .pad = 0, .kernel = 2},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::max_pool2d, "batch 1, 3x3/1 overlapping", S{{1, 5, 5, 3}}, {.stride = 1, .pad = 1, .kernel = 3},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::max_pool2d, "5x5/3 pad 2, 9x7, C = 1", S{{2, 9, 7, 1}}, {.stride = 3, .pad = 2, .kernel = 5},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::max_pool2d, "batch 1, 7x7, C = 13", S{{1, 7, 7, 13}}, {.stride = 2, .pad = 1, .kernel = 3},
            DType::f32, kExact, kFd, kF32Elem),
        row(Op::global_avg_pool, "3x4x5x6", S{{3, 4, 5, 6}}, {}, DType::f32, kSum, kFd, kF32Norm),
        row(Op::global_avg_pool, "batch 1, 7x7, C = 13", S{{1, 7, 7, 13}}, {}, DType::f32, kSum, kFd, kF32Norm),
        row(Op::global_avg_pool, "1x1 plane", S{{2, 1, 1, 3}}, {}, DType::f32, kSum, kFd, kF32Norm),
    };
    // ---- batch norm: 2-D (NHWC), 1-D ([N,C]), batch 1; training and eval; affine on and off
    for (const Shape& s : {Shape{3, 4, 5, 3}, Shape{7, 4}, Shape{1, 3, 2, 2}})
      for (bool training : {true, false})
        for (bool affine : {true, false})
          r.push_back(row(Op::batch_norm,
                          s.str() + (training ? " training" : " eval") + (affine ? ", affine" : ", no affine"),
                          S{s}, {.training = training, .affine = affine}, DType::f32, kSum, kFd, kF32Bn, {},
                          kDevF32Bn));
    const std::vector<OpCase> more = {
        row(Op::batch_norm, "4x5x3x6 training + relu", S{{4, 5, 3, 6}},
            {.training = true, .relu = true, .f32_buffers = false}, DType::f32, kSum, kFd, kF32Bn, kFusedBn,
            kDevF32Bn),
        row(Op::batch_norm, "4x5x3x6 eval + relu", S{{4, 5, 3, 6}},
            {.training = false, .relu = true, .f32_buffers = false}, DType::f32, kSum, kFd, kF32Bn, kFusedBn,
            kDevF32Bn),
        row(Op::batch_norm, "9x5 (1-D) training + relu", S{{9, 5}},
            {.training = true, .relu = true, .f32_buffers = false}, DType::f32, kSum, kFd, kF32Bn, kFusedBn,
            kDevF32Bn),
        row(Op::batch_norm, "9x5 (1-D) eval + relu", S{{9, 5}}, {.training = false, .relu = true, .f32_buffers = false},
            DType::f32, kSum, kFd, kF32Bn, kFusedBn, kDevF32Bn),
        row(Op::batch_norm, "2x7x7x13 training + relu, running statistics", S{{2, 7, 7, 13}},
            {.training = true, .relu = true, .running = true}, DType::f32, kSum, kFd, kF32Bn, kFusedBn, kDevF32Bn),
        row(Op::batch_norm, "6x5x5x8 training, affine (150 rows)", S{{6, 5, 5, 8}}, {}, DType::f32, kSum, kFd, kF32Bn,
            {}, kDevF32Bn),
        // ---- normalisation and losses
        row(Op::l2_normalize, "5x7", S{{5, 7}}, {}, DType::f32, kSum, kFd, kF32Norm, {}, kDevF32Norm),
        row(Op::l2_normalize, "3x4, row 1 shorter than eps = 1e-3 (the clamp)", S{{3, 4}},
            {.eps = 1e-3, .tiny_row = true}, DType::f32, kSum, kFd, kF32Norm, {}, kDevF32Norm),
        row(Op::l2_normalize, "one row of 13", S{{1, 13}}, {}, DType::f32, kSum, kFd, kF32Norm, {}, kDevF32Norm),
        row(Op::cross_entropy, "6x5, i32 labels", S{{6, 5}}, {.labels = DType::i32}, DType::f32, kSum, kFd, kF32Norm,
            {}, kDevF32Norm),
        row(Op::cross_entropy, "6x5, i64 labels", S{{6, 5}}, {.labels = DType::i64}, DType::f32, kSum, kFd, kF32Norm,
            {}, kDevF32Norm),
        row(Op::cross_entropy, "batch 1, 10 classes", S{{1, 10}}, {}, DType::f32, kSum, kFd, kF32Norm, {}, kDevF32Norm),
        row(Op::cross_entropy, "13x2, i32 labels", S{{13, 2}}, {.labels = DType::i32}, DType::f32, kSum, kFd,
            kF32Norm, {}, kDevF32Norm),
        // ---- NT-Xent: CPU op (float64 gradients, f32, the composite)
        // (V = 2: the loss is identically 0, so its gradient is 0 and f32 against f64 compares
        // rounding noise with rounding noise: no low row; tests/test_ntxent.cpp has the closed form)
        row(Op::ntxent, "V = 2 (one pair), D = 3", S{{2, 3}}, {.tau = 0.5}, DType::f32, kSum, kFd, {}, kFusedNtxent),
        row(Op::ntxent, "4x2, tau 1", S{{4, 2}}, {.tau = 1.0}, DType::f32, kSum, kFd, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "6x5, tau 0.1", S{{6, 5}}, {.tau = 0.1}, DType::f32, kSum, kFd, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "8x3, tau 0.05", S{{8, 3}}, {.tau = 0.05}, DType::f32, kSum, kFd, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "10x2, tau 0.2", S{{10, 2}}, {.tau = 0.2}, DType::f32, kSum, kFd, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "6x16, tau 0.07", S{{6, 16}}, {.tau = 0.07}, DType::f32, kSum, kFd, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "12x10, tau 0.05", S{{12, 10}}, {.tau = 0.05}, DType::f32, kSum, {}, kF32Ntxent, kFusedNtxent),
        row(Op::ntxent, "12x10, tau 0.5", S{{12, 10}}, {.tau = 0.5}, DType::f32, kSum, {}, kF32Ntxent, kFusedNtxent),
    };
    r.insert(r.end(), more.begin(), more.end());
    // ---- NT-Xent: the CUDA kernels (emulated and on a GPU), bf16 and fp32 each; the
    // fp32 rows of the emulated sizes also run the CPU modes.
    enum Emulate { kGpuOnly = 0, kEmuBf16 = 1, kEmuF32 = 2, kEmuBoth = 3 };  // which dtypes the emulator runs
    struct K {
      const char* name;
      int64_t V, D;
      double tau;
      int ksplit, ranks;
      int emulate;
    };
    const K kernel_cases[] = {
        {"one pair: the positive is the only key", 2, 3, 0.1, 0, 1, kEmuBoth},
        {"d = 1: ẑ = ±1", 6, 1, 0.5, 0, 1, kEmuBoth},
        {"one exact 64-wide chunk", 6, 64, 0.05, 0, 1, kEmuBoth},
        {"2 row blocks (tail 2), 3 key tiles (tail 2), key split 2", 130, 3, 0.1, 2, 1, kEmuBoth},
        {"the SimCLR head width: bf16 two-chunk slab", 130, 128, 0.05, 0, 1, kEmuBoth},
        {"... with key split 3 and 3 uneven ranks", 130, 128, 0.1, 3, 3, kEmuBoth},
        {"key split 1, 2 ranks", 130, 64, 0.5, 1, 2, kEmuBoth},
        {"Dp = 256: bf16 resident, fp32 streamed queries", 66, 200, 0.1, 2, 1, kEmuBoth},
        {"Dp = 320: streamed queries, 5 one-chunk slabs", 34, 300, 0.5, 1, 1, kEmuBoth},
        {"3 row blocks, 5 key tiles, Dp = 192, 2 ranks", 258, 130, 0.05, 3, 2, kEmuBoth},
        // larger: one dtype each under the emulator (seconds each), both on a GPU
        {"1000 views: many row blocks and key tiles with tails", 1000, 128, 0.1, 0, 1, kEmuBf16},
        {"1000 views, 3 uneven ranks", 1000, 64, 0.05, 0, 3, kEmuF32},
        {"d = 2048: 16 feature slabs", 40, 2048, 0.5, 0, 1, kEmuBf16},
        {"d = 2048, key split 2, 2 ranks", 40, 2048, 0.1, 2, 2, kEmuF32},
        // a GPU only (minutes under the emulator)
        {"the op's size on CUDA tensors", 300, 96, 0.1, 0, 1, kGpuOnly},
        {"4096 views: the SimCLR shape", 4096, 128, 0.1, 0, 1, kGpuOnly},
        {"4096 views, explicit odd key split 7", 4096, 128, 0.5, 7, 1, kGpuOnly},
        {"1000 views, d = 2048", 1000, 2048, 0.5, 0, 1, kGpuOnly},
    };
    for (const K& k : kernel_cases)
      for (DType dt : {DType::bf16, DType::f32}) {
        // the CPU modes on the fp32 rows that are cheap in float64 (V·D <= 20000: milliseconds) and
        // whose gradient does not vanish (V = 2 and d = 1 have dL/dz = 0 exactly: relative errors
        // of rounding noise)
        const bool cpu_modes = dt == DType::f32 && k.V * k.D <= 20000 && k.V > 2 && k.D > 1;
        const bool emulate = (k.emulate & (dt == DType::bf16 ? kEmuBf16 : kEmuF32)) != 0;
        r.push_back(row(Op::ntxent, "kernel, " + std::to_string(k.V) + "x" + std::to_string(k.D) + ": " + k.name,
                        S{{k.V, k.D}}, {.tau = k.tau, .ksplit = k.ksplit, .ranks = k.ranks, .emulate = emulate}, dt,
                        cpu_modes ? kSum : Tol{}, {}, cpu_modes ? kF32Ntxent : Tol{},
                        cpu_modes ? kFusedNtxent : Tol{}, dt == DType::bf16 ? kDevBf16 : kDevF32));
      }
    // the largest: bf16 only (as the SimCLR run at d = 2048 would use)
    r.push_back(row(Op::ntxent, "kernel, 4096x2048: 4096 views, d = 2048", S{{4096, 2048}},
                    {.tau = 0.1, .emulate = false}, DType::bf16, {}, {}, {}, {}, kDevBf16));
    // ---- the CUDA twins of the other ops: device tolerances by op (tol::device_tolerance)
    // for the f32 rows that set none, and a bf16 twin of each such row (device modes only).
    const size_t n = r.size();
    for (size_t i = 0; i < n; i++) {
      if (r[i].op == Op::ntxent || r[i].dtype != DType::f32) continue;
      if (!r[i].dev.on()) r[i].dev = device_tolerance(r[i].op, DType::f32);
      const Tol b = device_tolerance(r[i].op, DType::bf16);
      if (!r[i].dev.on() || !b.on()) continue;
      // max pool: bf16 only where the distinct inputs stay distinct (numel < 512, kDevBf16MaxPool)
      if (r[i].op == Op::max_pool2d && r[i].shapes[0].numel() >= 512) continue;
      // (add_relu: every row repeats the float64 fused check, as every such row)
      r.push_back(row(r[i].op, r[i].name, r[i].shapes, r[i].opt, DType::bf16, {}, {}, {},
                      r[i].op == Op::add_relu ? r[i].fused : Tol{}, b));
    }
    // ... and max pool's C = 13 case in bf16 on a plane small enough for that
    r.push_back(row(Op::max_pool2d, "batch 1, 5x5, C = 13", S{{1, 5, 5, 13}}, {.stride = 2, .pad = 1, .kernel = 3},
                    DType::bf16, {}, {}, {}, {}, kDevBf16MaxPool));
    // ---- batch norm, L2-normalise, cross-entropy: the bf16 CUDA kernels (dev only: the CPU
    // has no bf16 kernels; the BN+ReLU rows repeat the float64 fused check, as every such row)
    const std::vector<OpCase> bf16_rows = {
        row(Op::batch_norm, "2x7x7x13 training + relu, running statistics", S{{2, 7, 7, 13}},
            {.training = true, .relu = true, .running = true}, DType::bf16, {}, {}, {}, kFusedBn, kDevBf16Bn),
        row(Op::batch_norm, "4x5x3x6 eval + relu", S{{4, 5, 3, 6}}, {.training = false, .relu = true},
            DType::bf16, {}, {}, {}, kFusedBn, kDevBf16Bn),
        row(Op::batch_norm, "9x5 (1-D) training, no affine", S{{9, 5}}, {.training = true, .affine = false},
            DType::bf16, {}, {}, {}, {}, kDevBf16Bn),
        row(Op::batch_norm, "6x5x5x8 training, affine (150 rows)", S{{6, 5, 5, 8}}, {}, DType::bf16, {}, {}, {}, {},
            kDevBf16Bn),
        row(Op::l2_normalize, "5x7", S{{5, 7}}, {}, DType::bf16, {}, {}, {}, {}, kDevBf16Norm),
        row(Op::l2_normalize, "3x4, row 1 shorter than eps = 1e-3 (the clamp)", S{{3, 4}},
            {.eps = 1e-3, .tiny_row = true}, DType::bf16, {}, {}, {}, {}, kDevBf16Norm),
        row(Op::cross_entropy, "6x5, i32 labels", S{{6, 5}}, {.labels = DType::i32}, DType::bf16, {}, {}, {}, {},
            kDevBf16Norm),
        row(Op::cross_entropy, "13x2, i64 labels", S{{13, 2}}, {.labels = DType::i64}, DType::bf16, {}, {}, {}, {},
            kDevBf16Norm),
    };
    r.insert(r.end(), bf16_rows.begin(), bf16_rows.end());
    // ---- cast: round trips (opt.cast_to) f64/f32 <-> f32/bf16; the CPU has every pair, CUDA f32 <-> bf16
    const std::vector<OpCase> cast_rows = {
        row(Op::cast, "3x4 through f32", S{{3, 4}}, {.cast_to = DType::f32}, DType::f32, kExact, kCastFd, kExact),
        row(Op::cast, "2x7x7x13 through bf16", S{{2, 7, 7, 13}}, {.cast_to = DType::bf16}, DType::f32, kCastExact,
            {}, kCastExact, {}, kCastExact),
        row(Op::cast, "odd 1001 through bf16", S{{1001}}, {.cast_to = DType::bf16}, DType::f32, kCastExact, {},
            kCastExact, {}, kCastExact),
        row(Op::cast, "2x7x7x13 bf16 through f32", S{{2, 7, 7, 13}}, {.cast_to = DType::f32}, DType::bf16, {}, {},
            {}, {}, kDevCastBf16),
    };
    r.insert(r.end(), cast_rows.begin(), cast_rows.end());
    return r;
  }();
  return rows;
}

}  // namespace simclr::test
