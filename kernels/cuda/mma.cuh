// kernels/cuda/mma.cuh - warp-level tensor-core and async-copy wrappers.
//
// THE ONE PLACE WHERE THE EMULATOR AND THE HARDWARE MAY DIFFER. Each wrapper
// is one PTX instruction on sm_80+ and, under the emulator (SIMCLR_EMU), an
// exact warp collective: all 32 lanes hand in their fragments, and each lane
// gets back its own part of the result, scattered with the PTX ISA fragment
// layouts written below. Known differences: the emulated mma multiplies the
// bf16/tf32 inputs exactly in fp32 and sums k = 0..K-1 in order, then adds c;
// the hardware's summation order and intermediate rounding differ (a test
// tolerance must allow a few fp32 ulps per product term). cp.async copies are
// deferred to cp_async_wait (a missing wait reads stale shared memory).
//
// Fragment layouts (PTX ISA "Matrix Fragments for mma.m16n8k16 / m16n8k8",
// "ldmatrix"). lane = 0..31, g = lane >> 2 (groupID), t = lane & 3
// (threadID_in_group). A 32-bit register holding two 16-bit elements keeps
// the lower-indexed element in its low half.
//
//   mma.m16n8k16 .bf16   A (16x16, row major) a[0..3] = 8 bf16 elements e0..e7:
//        row(e_i) = g + 8*((i >> 1) & 1)      col(e_i) = 2t + (i & 1) + 8*(i >> 2)
//     B (16x8, "col": element (k, n)) b[0..1] = 4 bf16 elements e0..e3:
//        k(e_i) = 2t + (i & 1) + 8*(i >> 1)    n(e_i) = g
//   mma.m16n8k8 .tf32    A (16x8) a[0..3] one fp32 bit pattern each:
//        row(a_i) = g + 8*(i & 1)             col(a_i) = t + 4*(i >> 1)
//     B (8x8) b[0..1]:  k(b_i) = t + 4*i       n(b_i) = g
//     (the hardware reads only the top 19 bits of a tf32 operand; round with
//      float_to_tf32 first.)
//   C and D (16x8 fp32), both shapes, c[0..3] / d[0..3]:
//        row(c_i) = g + 8*(i >> 1)            col(c_i) = 2t + (i & 1)
//   ldmatrix.m8n8 .b16 (.x1/.x2/.x4 = 1/2/4 matrices of 8x8 16-bit elements):
//     lanes 8m..8m+7 pass the addresses of rows 0..7 of matrix m (16-byte
//     aligned shared memory, 16 bytes per row). Register r[m] of lane gets
//        without .trans: M_m[g][2t], M_m[g][2t+1]
//        with .trans:    M_m[2t][g], M_m[2t+1][g]
//     so ldmatrix_x4 on a row-major 16x16 bf16 A tile with lane l pointing at
//     row (l & 15), column 8*(l >> 4) yields exactly the mma A fragment, and
//     ldmatrix_x2_trans on a row-major [k][n] B tile (lane l -> row l & 15)
//     yields the B fragment.
//   The *_row / *_col functions below are these formulas, for kernels and tests.
#pragma once
#include "kernels/cuda/common.cuh"

namespace simclr::SIMCLR_KNS {

// ---- layout formulas (lane 0..31, element index i as above)
__host__ __device__ constexpr inline int mma_bf16_a_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
__host__ __device__ constexpr inline int mma_bf16_a_col(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 2); }
__host__ __device__ constexpr inline int mma_bf16_b_k(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 1); }
__host__ __device__ constexpr inline int mma_bf16_b_n(int lane, int /*i*/) { return lane >> 2; }
__host__ __device__ constexpr inline int mma_tf32_a_row(int lane, int i) { return (lane >> 2) + 8 * (i & 1); }
__host__ __device__ constexpr inline int mma_tf32_a_col(int lane, int i) { return (lane & 3) + 4 * (i >> 1); }
__host__ __device__ constexpr inline int mma_tf32_b_k(int lane, int i) { return (lane & 3) + 4 * i; }
__host__ __device__ constexpr inline int mma_tf32_b_n(int lane, int /*i*/) { return lane >> 2; }
__host__ __device__ constexpr inline int mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
__host__ __device__ constexpr inline int mma_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// Round an fp32 value to tf32 (round to nearest, ties away: cvt.rna.tf32.f32).
__device__ __forceinline__ uint32_t float_to_tf32(float x) {
#ifdef SIMCLR_EMU
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;  // finite: round the 13 dropped bits
  return u & 0xffffe000u;
#else
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#endif
}

// Two floats -> one register of two bf16 (lo = first).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}

#ifdef SIMCLR_EMU
// Under the emulator each wrapper is one warp collective whose result is
// computed once for the warp (by the last lane to arrive) from all 32 lanes'
// fragments, using only the layout formulas above.
namespace detail {
inline float bf16_bits_to_float(uint32_t bits16) {
  uint32_t u = bits16 << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float tf32_bits_to_float(uint32_t bits) {
  uint32_t u = bits & 0xffffe000u;  // the hardware reads the top 19 bits
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
struct MmaIn {
  uint32_t a[4], b[2];
  float c[4];
};
constexpr int kSlot = ::simclr::emu::detail::kSlotBytes;

// d = a*b + c for the whole warp: A, B gathered with the formulas, each
// output element summed over k in order in fp32, then c added.
template <bool BF16>
void mma_warp(const unsigned char* in, unsigned char* out, unsigned /*mask*/) {
  constexpr int K = BF16 ? 16 : 8;
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    MmaIn f;
    std::memcpy(&f, in + l * kSlot, sizeof f);
    if (BF16) {
      for (int i = 0; i < 8; ++i) A[mma_bf16_a_row(l, i)][mma_bf16_a_col(l, i)] = bf16_bits_to_float(f.a[i >> 1] >> (16 * (i & 1)) & 0xffffu);
      for (int i = 0; i < 4; ++i) B[mma_bf16_b_k(l, i)][mma_bf16_b_n(l, i)] = bf16_bits_to_float(f.b[i >> 1] >> (16 * (i & 1)) & 0xffffu);
    } else {
      for (int i = 0; i < 4; ++i) A[mma_tf32_a_row(l, i)][mma_tf32_a_col(l, i)] = tf32_bits_to_float(f.a[i]);
      for (int i = 0; i < 2; ++i) B[mma_tf32_b_k(l, i)][mma_tf32_b_n(l, i)] = tf32_bits_to_float(f.b[i]);
    }
  }
  for (int l = 0; l < 32; ++l) {
    MmaIn f;
    std::memcpy(&f, in + l * kSlot, sizeof f);
    float d[4];
    for (int i = 0; i < 4; ++i) {
      const int r = mma_c_row(l, i), n = mma_c_col(l, i);
      float s = 0.0f;
      for (int k = 0; k < K; ++k) s += A[r][k] * B[k][n];
      d[i] = s + f.c[i];
    }
    std::memcpy(out + l * kSlot, d, sizeof d);
  }
}
template <bool BF16>
void mma_emu(float* d, const uint32_t* a, const uint32_t* b, const float* c, const std::source_location& site) {
  const MmaIn mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
  auto s = ::simclr::emu::detail::warp_arrive(BF16 ? "mma.m16n8k16.bf16" : "mma.m16n8k8.tf32", 0xffffffffu, &mine,
                                              sizeof mine, mma_warp<BF16>, site.file_name(),
                                              static_cast<int>(site.line()));
  std::memcpy(d, s.out + ::simclr::emu::detail::lane_id() * kSlot, 4 * sizeof(float));
  ::simclr::emu::detail::warp_done(s.handle);
}

inline unsigned short load_b16(uintptr_t addr) {
  unsigned short v;
  std::memcpy(&v, reinterpret_cast<const void*>(addr), 2);
  return v;
}
// Register m of lane l: M_m[g][2t..2t+1] (or M_m[2t..2t+1][g] transposed),
// row r of matrix m at the address of lane 8m + r.
template <int M, bool Trans>
void ldmatrix_warp(const unsigned char* in, unsigned char* out, unsigned /*mask*/) {
  uintptr_t addr[32];
  for (int l = 0; l < 32; ++l) std::memcpy(&addr[l], in + l * kSlot, sizeof(uintptr_t));
  for (int l = 0; l < 8 * M; ++l)
    if (addr[l] % 16 != 0)
      ::simclr::emu::detail::device_fail(nullptr, 0, "ldmatrix: row address of lane ", l, " is not 16-byte aligned");
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    uint32_t r[M];
    for (int m = 0; m < M; ++m) {
      uint32_t lo, hi;
      if (!Trans) {
        lo = load_b16(addr[8 * m + g] + 2 * (2 * t));
        hi = load_b16(addr[8 * m + g] + 2 * (2 * t + 1));
      } else {
        lo = load_b16(addr[8 * m + 2 * t] + 2 * g);
        hi = load_b16(addr[8 * m + 2 * t + 1] + 2 * g);
      }
      r[m] = lo | (hi << 16);
    }
    std::memcpy(out + l * kSlot, r, sizeof r);
  }
}
template <int M, bool Trans>
void ldmatrix_emu(uint32_t* r, const void* row_addr, const std::source_location& site) {
  static const char* kinds[2][5] = {{"", "ldmatrix.x1", "ldmatrix.x2", "", "ldmatrix.x4"},
                                    {"", "ldmatrix.x1.trans", "ldmatrix.x2.trans", "", "ldmatrix.x4.trans"}};
  const uintptr_t mine = reinterpret_cast<uintptr_t>(row_addr);
  auto s = ::simclr::emu::detail::warp_arrive(kinds[Trans][M], 0xffffffffu, &mine, sizeof mine, ldmatrix_warp<M, Trans>,
                                              site.file_name(), static_cast<int>(site.line()));
  std::memcpy(r, s.out + ::simclr::emu::detail::lane_id() * kSlot, M * sizeof(uint32_t));
  ::simclr::emu::detail::warp_done(s.handle);
}
}  // namespace detail
#endif

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d = a*b + c (all 32 lanes)
__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                  const float (&c)[4] SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::mma_emu<true>(d, a, b, c, emu_site_);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

// ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: d = a*b + c (all 32 lanes)
__device__ __forceinline__ void mma_tf32_m16n8k8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                 const float (&c)[4] SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::mma_emu<false>(d, a, b, c, emu_site_);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.{x4,x2}[.trans].shared.b16 (all 32 lanes; row_addr: this lane's row)
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::ldmatrix_emu<4, false>(r, row_addr, emu_site_);
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
#endif
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row_addr SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::ldmatrix_emu<2, false>(r, row_addr, emu_site_);
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_addr SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::ldmatrix_emu<4, true>(r, row_addr, emu_site_);
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
#endif
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row_addr SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  detail::ldmatrix_emu<2, true>(r, row_addr, emu_site_);
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
#endif
}

// ---- cp.async (sm_80): 16 bytes global -> shared, both 16-byte aligned.
// cp_async_16_zfill copies src_bytes (0..16) and zero-fills the rest (src is
// not read when src_bytes == 0: use it for out-of-range rows).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  ::simclr::emu::detail::cp_async(smem, gmem, 16, 16, emu_site_.file_name(), static_cast<int>(emu_site_.line()));
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
#endif
}
__device__ __forceinline__ void cp_async_16_zfill(void* smem, const void* gmem, int src_bytes SIMCLR_EMU_SITE_PARAM) {
#ifdef SIMCLR_EMU
  ::simclr::emu::detail::cp_async(smem, gmem, src_bytes, 16, emu_site_.file_name(), static_cast<int>(emu_site_.line()));
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
#endif
}
// Closes the group of cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef SIMCLR_EMU
  ::simclr::emu::detail::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most N committed groups are still in flight (N = 0: all).
// Other threads' copies need a __syncthreads() after this, as on the GPU.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef SIMCLR_EMU
  ::simclr::emu::detail::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace simclr::SIMCLR_KNS
