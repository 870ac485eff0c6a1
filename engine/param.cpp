// engine/param.cpp - ParamStore (see param.h).
#include "engine/param.h"

#include <unordered_set>

namespace simclr {

size_t ParamStore::add(const std::string& name, const Shape& shape, uint32_t flags, DType dtype) {
  SIMCLR_CHECK(!materialized_, "ParamStore::add('", name, "') after materialize()");
  SIMCLR_CHECK(find(name) == nullptr, "duplicate parameter name '", name, "'");
  SIMCLR_CHECK(dtype == DType::f32, "parameter '", name, "': only f32 master parameters are supported");
  SIMCLR_CHECK(!((flags & kTrainable) && (flags & kIsBuffer)), "parameter '", name,
               "' cannot be both trainable and a buffer");
  Param p;
  p.name = name;
  p.shape = shape;
  p.dtype = dtype;
  p.flags = flags;
  params_.push_back(std::move(p));
  return params_.size() - 1;
}

void ParamStore::materialize(Device device) {
  SIMCLR_CHECK(!materialized_, "ParamStore::materialize() called twice");
  int64_t nt = 0, nb = 0;
  for (const Param& p : params_) (p.trainable() ? nt : nb) += p.shape.numel();
  values_ = Tensor::zeros({nt}, DType::f32, device);
  grads_ = Tensor::zeros({nt}, DType::f32, device);
  buffers_ = Tensor::zeros({nb}, DType::f32, device);
  bind_views();
  materialized_ = true;
}

void ParamStore::to(Device device) {
  SIMCLR_CHECK(materialized_, "ParamStore::to(", device.str(), ") before materialize()");
  if (values_.device() == device) return;
  values_ = values_.to(device);
  grads_ = grads_.to(device);
  buffers_ = buffers_.to(device);
  bind_views();
}

Device ParamStore::device() const {
  SIMCLR_CHECK(materialized_, "ParamStore::device() before materialize()");
  return values_.device();
}

void ParamStore::bind_views() {
  int64_t ot = 0, ob = 0;
  for (Param& p : params_) {
    int64_t n = p.shape.numel();
    if (p.trainable()) {
      p.value = values_.slice0(ot, ot + n).view(p.shape);
      p.grad = grads_.slice0(ot, ot + n).view(p.shape);
      p.value.set_name(p.name).set_requires_grad(true);
      p.value.set_grad(p.grad);
      ot += n;
    } else {
      p.value = buffers_.slice0(ob, ob + n).view(p.shape);
      p.value.set_name(p.name);
      ob += n;
    }
  }
}

const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const Param& ParamStore::get(const std::string& name) const {
  const Param* p = find(name);
  SIMCLR_CHECK(p != nullptr, "no parameter named '", name, "'");
  return *p;
}
Param& ParamStore::get(const std::string& name) {
  return const_cast<Param&>(static_cast<const ParamStore*>(this)->get(name));
}

size_t ParamStore::num_trainable() const {
  return values_.defined() ? static_cast<size_t>(values_.numel()) : 0;
}

void ParamStore::rebind_grads() {
  for (Param& p : params_)
    if (p.trainable()) p.value.set_grad(p.grad);
}

void ParamStore::zero_grad() {
  SIMCLR_CHECK(materialized_, "zero_grad before materialize()");
  grads_.zero_();
  rebind_grads();
}

}  // namespace simclr
