// kernels/lars.h - one LARS step over all trainable parameters at once: the
// CPU reference (kernels/cpu/lars.cpp, what optim/lars.cpp runs on the CPU)
// and the fused CUDA kernels (kernels/cuda/lars.cu, two launches for the whole
// model, also run under the kernel emulator). The update rule is the official
// SimCLR LARS, documented in optim/lars.h:
//
//   adapted segment:   g' = g + wd w,  trust = eta |w| / |g'| (1 when either norm is 0),
//                      lr_w = lr trust
//   excluded segment:  g' = g,         lr_w = lr        (BN parameters and biases)
//   v = momentum v + lr_w g'
//   w = w - v                    (nesterov: w = w - (momentum v + lr_w g'))
//
// Layout: w, g, v are the ParamStore's contiguous buffers (f32); parameter s
// is the segment [offset, offset + n). The norms are accumulated in double
// and the update computed in double from the float values (as the CPU
// reference does), so both agree to float rounding.
//
// The CUDA form splits segments into chunks of at most `chunk` elements
// (lars_chunks, built once on the host since the layout never changes):
// kernel 1 writes each chunk's partial sums of w² and g'² (doubles, no
// atomics: deterministic), kernel 2 lets every chunk's block add its
// segment's partials in a fixed order, form the trust ratio and update its
// elements. lr is read from device memory so that a captured CUDA graph can
// replay the step with a new rate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr {

struct LarsSegment {
  int64_t offset = 0, n = 0;  // elements [offset, offset + n) of w, g, v
  int32_t adapt = 0;          // 1: weight decay + trust ratio; 0: excluded
  int32_t chunk_begin = 0, chunk_end = 0;  // its chunks [begin, end) (set by lars_chunks)
};

struct LarsChunk {
  int64_t begin = 0, end = 0;  // elements of w [begin, end)
  int32_t segment = 0;         // index into the segment table
  int32_t first = 0;           // 1 for the segment's first chunk (writes its trust)
};

struct LarsHyper {
  double momentum = 0.9, eta = 0.001, weight_decay = 1e-6;
  bool nesterov = false;
};

// Splits every segment into chunks of at most `chunk` elements (an empty
// segment gets one empty chunk) and fills the segments' chunk ranges.
std::vector<LarsChunk> lars_chunks(std::vector<LarsSegment>& segments, int64_t chunk = 32768);

namespace cpu {
// trust[s] = the trust ratio used for segment s (1 when excluded); may be null.
void lars_step(float* w, const float* g, float* v, const LarsSegment* segments, int num_segments, double lr,
               const LarsHyper& h, double* trust);
}  // namespace cpu

}  // namespace simclr

// Device pointers (host memory under the emulator). segments[num_segments],
// chunks[num_chunks] as built by lars_chunks; workspace: lars_workspace_bytes;
// lr: one double on the device; trust[num_segments] (float) or null.
// halt: null, or one float on the device: when it is not 0 the step changes
// nothing (w, v and trust keep their values).
//
// lars_guard, the device step's loss check (train/step.cpp), one thread:
//   guard[0] = *loss;  guard[1] = 1 when *loss is not finite (guard[1] is
//   never cleared here: once set, every later lars_step given halt = guard + 1
//   is a no-op, so a non-finite loss stops the updates without the host
//   reading the loss first).
#define SIMCLR_LARS_LAUNCHERS                                                                            \
  size_t lars_workspace_bytes(int64_t num_chunks);                                                      \
  void lars_step(float* w, const float* g, float* v, const ::simclr::LarsSegment* segments,            \
                 const ::simclr::LarsChunk* chunks, int64_t num_chunks, const double* lr,                \
                 const ::simclr::LarsHyper& h, void* workspace, float* trust, const float* halt,         \
                 cudaStream_t stream);                                                                   \
  void lars_guard(float* guard, const float* loss, cudaStream_t stream);

namespace simclr::gpu { SIMCLR_LARS_LAUNCHERS }
namespace simclr::emu { SIMCLR_LARS_LAUNCHERS }
