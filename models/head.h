// models/head.h - the SimCLR projection head g: h[N,F] -> z[N,out].
//
// As the official implementation (SimCLR v2, tf2/model.py ProjectionHead):
// depth 2 (SimCLR v1) or 3 (v2) linear layers, each without bias and followed
// by BN; every layer but the last has BN with gamma and beta then ReLU; the
// last has BN with gamma only (center=False) and no ReLU. hidden = 0 means the
// hidden width equals the input width F (the official choice).
// With bn = false the layers are plain linear layers with bias and ReLU
// between them (the v1 paper's MLP).
//
// Names (a PyTorch nn.Sequential would give the same indices):
//   bn = true : head.0.weight (linear), head.1.{weight,bias,running_mean,
//               running_var,num_batches_tracked} (BN), [head.2 = ReLU],
//               head.3.weight, head.4.*, ..., last BN: head.K.weight (no bias)
//   bn = false: head.0.{weight,bias}, [head.1 = ReLU], head.2.{weight,bias} ...
// Every head parameter carries kIsHead (export drops them). Linear weights are
// OI and initialised like PyTorch's nn.Linear: U(-1/sqrt(in), 1/sqrt(in)).
#pragma once
#include <string>
#include <vector>

#include "ops/ops.h"
#include "engine/param.h"

namespace simclr {

struct HeadConfig {
  int depth = 2;          // number of linear layers, 1..4 (2 = v1, 3 = v2)
  int64_t hidden = 0;     // hidden width; 0 = the encoder's feature dim
  int64_t out = 128;      // z dimension
  bool bn = true;         // BN after each linear layer (official)
  double bn_momentum = 0.1;
  double bn_eps = 1e-5;
};

class ProjectionHead {
 public:
  ProjectionHead(const HeadConfig& cfg, int64_t in_dim, ParamStore& store, const std::string& prefix = "head.");
  void init(uint64_t seed);
  // h[N,F] -> z[N,out] in h's dtype (f32, or bf16: weights cast from their
  // f32 masters, as ResNet::forward) (not normalised; NT-Xent normalises).
  // layers >= 0: only the first `layers` layers, each with its BN and ReLU (SimCLR
  // v2 fine-tunes from such a hidden layer of the head); -1: all of them.
  Tensor forward(const Tensor& h, bool training, Communicator* comm = nullptr, int layers = -1);
  // The output width after the first `layers` layers (-1: all).
  int64_t width_after(int layers) const;
  const HeadConfig& config() const { return cfg_; }

 private:
  struct Layer {
    size_t weight = 0, bias = 0;                           // bias only without BN
    size_t gamma = 0, beta = 0, mean = 0, var = 0, count = 0;  // BN; beta absent in the last
    int64_t in = 0, out = 0;
    bool last = false;
  };
  HeadConfig cfg_;
  ParamStore* store_;
  std::vector<Layer> layers_;
};

}  // namespace simclr
