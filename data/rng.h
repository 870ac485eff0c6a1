// data/rng.h - the counter-based random numbers of the data pipeline.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011; the generator of Random123 and cuRAND): a bijection of
// a 128-bit counter under a 64-bit key, 10 rounds. Checked against the Random123
// known-answer vectors in tests/test_augment.cpp.
//
// The RNG contract (docs/data.md):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block, stream, sample, epoch)
//     block   0, 1, 2, ...: the draw counter; each block gives four 32-bit words,
//             used in order (word 0 of block 0 is the first draw)
//     stream  what the numbers are for: kStreamView1 / kStreamView2 for the
//             augmentation of view 1 / view 2, kStreamShuffle for the epoch's
//             permutation, kStreamEval for anything else
//     sample  the dataset index of the image (0 for the shuffle)
//     epoch   the epoch number
// So the parameters of (seed, epoch, sample, view) are a pure function of those
// four numbers: they do not depend on the thread that draws them, the batch the
// sample lands in, or how many workers there are.
//
// Conversions: uniform() = (a >> 5, b >> 6) of two consecutive words as a
// 53-bit double in [0, 1) (the classic genrand_res53); below(n) = the high
// 64 bits of (64-bit word pair) * n, bias < n / 2^64.
#pragma once
#include <cstdint>

namespace simclr {

constexpr uint32_t kStreamView1 = 0;
constexpr uint32_t kStreamView2 = 1;
constexpr uint32_t kStreamShuffle = 0x5348u;  // "SH"
constexpr uint32_t kStreamEval = 0x4556u;     // "EV"

struct Philox4x32 {
  uint32_t v[4];
};

// One Philox4x32-10 block: counter ctr under key.
inline Philox4x32 philox4x32_10(const uint32_t ctr[4], const uint32_t key[2]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = static_cast<uint64_t>(M0) * c0;
    uint64_t p1 = static_cast<uint64_t>(M1) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return {{c0, c1, c2, c3}};
}

// A stream of draws for one (seed, stream, sample, epoch).
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint32_t stream, uint32_t sample, uint32_t epoch) {
    key_[0] = static_cast<uint32_t>(seed);
    key_[1] = static_cast<uint32_t>(seed >> 32);
    ctr_[0] = 0;
    ctr_[1] = stream;
    ctr_[2] = sample;
    ctr_[3] = epoch;
  }

  // Next 32-bit word; refills from the next block every fourth call.
  uint32_t next_u32() {
    if (pos_ == 4) {
      Philox4x32 b = philox4x32_10(ctr_, key_);
      for (int i = 0; i < 4; i++) buf_[i] = b.v[i];
      ctr_[0]++;
      pos_ = 0;
    }
    return buf_[pos_++];
  }
  uint64_t next_u64() {
    uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform() {
    uint32_t a = next_u32() >> 5, b = next_u32() >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
  }
  // lo + (hi - lo) * uniform(), as torch's uniform_(lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // true with probability p (uniform() < p): p <= 0 never, p >= 1 always.
  bool bernoulli(double p) { return uniform() < p; }
  // Integer in [0, n), n >= 1.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }
  // How many 32-bit words have been drawn so far.
  uint64_t words_drawn() const { return static_cast<uint64_t>(ctr_[0]) * 4 - (4 - pos_); }

 private:
  uint32_t key_[2];
  uint32_t ctr_[4];
  uint32_t buf_[4] = {0, 0, 0, 0};
  int pos_ = 4;
};

}  // namespace simclr
