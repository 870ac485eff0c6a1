// train/grad_buckets.cpp - see grad_buckets.h.
#include "train/grad_buckets.h"

#include <algorithm>
#include <sstream>

#include "engine/autograd.h"
#include "engine/check.h"

namespace simclr {

GradBuckets::GradBuckets(ParamStore& store, size_t bucket_bytes) : store_(&store), bucket_bytes_(bucket_bytes) {
  SIMCLR_CHECK(bucket_bytes > 0, "GradBuckets: the bucket size must be positive");
  SIMCLR_CHECK(store.materialized(), "GradBuckets: the parameter store is not materialized");
}

void GradBuckets::map_params() {
  // The value tensors are re-made by ParamStore::to(), so the map is rebuilt for every pass.
  const std::vector<Param>& ps = store_->params();
  index_.clear();
  offset_.assign(ps.size(), -1);
  int64_t o = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    if (!ps[i].trainable()) continue;
    index_[&ps[i].value.impl()] = i;
    offset_[i] = o;
    o += ps[i].shape.numel();
  }
  SIMCLR_CHECK(o == store_->grads().numel(), "GradBuckets: the parameters cover ", o, " of the ",
               store_->grads().numel(), " gradient elements");
}

void GradBuckets::backward_and_reduce(const Tensor& loss, Communicator& comm) {
  comm_ = &comm;
  map_params();
  const size_t nodes = tape_size();
  learning_ = !learned_ || nodes != tape_nodes_;
  if (learning_) first_node_.assign(store_->params().size(), kAtEnd);
  next_ = 0;
  started_early_ = 0;
  started_.assign(buckets_.size(), 0);
  {
    GradObserverScope watch(this);
    backward(loss);
  }
  if (learning_) {
    learn();
    tape_nodes_ = nodes;
    learned_ = true;
    learning_ = false;
    started_.assign(buckets_.size(), 0);
    next_ = 0;
  }
  while (next_ < buckets_.size()) start(next_++);
  comm.all_reduce_wait();
}

void GradBuckets::on_grad_access(const TensorImpl* t, size_t node) {
  const auto it = index_.find(t);
  if (it == index_.end()) return;  // an activation's gradient
  const size_t p = it->second;
  if (learning_) {
    first_node_[p] = std::min(first_node_[p], node);
    return;
  }
  SIMCLR_CHECK(!started_[bucket_of_[p]], "gradient buckets: tape node ", node, " adds to the gradient of '",
               store_->params()[p].name, "' after its bucket's all-reduce started (the step's op order changed ",
               "between steps; set train.grad_bucket_mb = 0 to reduce after the backward pass)");
}

void GradBuckets::on_node_done(size_t node) {
  if (learning_) return;
  while (next_ < buckets_.size() && buckets_[next_].ready_node != kAtEnd && buckets_[next_].ready_node >= node) {
    if (node > 0) started_early_++;
    start(next_++);
  }
}

void GradBuckets::start(size_t b) {
  Tensor t = store_->grads().slice0(buckets_[b].begin, buckets_[b].end);
  comm_->all_reduce_sum_start(t);
  started_[b] = 1;
}

void GradBuckets::learn() {
  const std::vector<Param>& ps = store_->params();
  std::vector<size_t> order;
  for (size_t i = 0; i < ps.size(); i++)
    if (ps[i].trainable()) order.push_back(i);
  // Final first: the largest first node first; parameters no op touched (zero, final from the
  // start) last; ties (one op, several parameters) from the end of the flat buffer.
  auto key = [&](size_t i) { return first_node_[i] == kAtEnd ? -1.0 : static_cast<double>(first_node_[i]); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (key(a) != key(b)) return key(a) > key(b);
    return a > b;
  });
  buckets_.clear();
  const int64_t cap = static_cast<int64_t>(bucket_bytes_ / sizeof(float));
  for (size_t i : order) {
    const int64_t b = offset_[i], e = b + ps[i].shape.numel();
    const size_t ready = first_node_[i];
    if (!buckets_.empty()) {
      Bucket& cur = buckets_.back();
      const bool next_to = e == cur.begin || b == cur.end;
      const bool same_kind = (ready == kAtEnd) == (cur.ready_node == kAtEnd);
      if (next_to && same_kind && (cur.end - cur.begin) + (e - b) <= cap) {
        cur.begin = std::min(cur.begin, b);
        cur.end = std::max(cur.end, e);
        cur.ready_node = std::min(cur.ready_node, ready);
        cur.params.push_back(i);
        continue;
      }
    }
    buckets_.push_back(Bucket{b, e, ready, {i}});
  }
  bucket_of_.assign(ps.size(), 0);
  for (size_t k = 0; k < buckets_.size(); k++)
    for (size_t i : buckets_[k].params) bucket_of_[i] = k;
}

std::string GradBuckets::describe() const {
  int64_t n = 0, largest = 0;
  for (const Bucket& b : buckets_) {
    n += b.end - b.begin;
    largest = std::max(largest, b.end - b.begin);
  }
  std::ostringstream s;
  s << buckets_.size() << " gradient buckets of at most " << static_cast<double>(bucket_bytes_) / (1 << 20)
    << " MiB (largest " << static_cast<double>(largest) * 4 / (1 << 20) << " MiB) over " << n << " values";
  return s.str();
}

}  // namespace simclr
