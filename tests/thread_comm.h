// tests/thread_comm.h - an in-process communicator over threads: R "ranks",
// each a std::thread with its own ThreadComm, meeting at barriers. For the
// unit tests of the distributed ops (global batch norm, NT-Xent with gathered
// negatives) in one process; the autograd tape is thread-local, so each
// thread runs its own forward and backward as a rank would. Tensors of any
// device (staged through host copies). Sums are formed in double in rank
// order, identical on every rank.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/comm.h"

namespace simclr::test {

class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), slots_(static_cast<size_t>(n)) {}
  int size() const { return n_; }
  void sync() {
    std::unique_lock<std::mutex> lock(mu_);
    const long gen = gen_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      gen_++;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }
  std::vector<Tensor>& slots() { return slots_; }
  int calls = 0;  // collectives run (rank 0 counts)

 private:
  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  long gen_ = 0;
  std::vector<Tensor> slots_;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  std::string backend() const override { return "threads"; }
  void all_reduce_sum(Tensor& t) override {
    publish(t);
    const int64_t n = t.numel();
    std::vector<double> acc(static_cast<size_t>(n), 0.0);
    for (const Tensor& s : g_.slots()) {
      if (s.numel() != n) throw std::runtime_error("ThreadComm: all_reduce_sum of unequal sizes");
      for (int64_t i = 0; i < n; i++) acc[i] += s.at(i);
    }
    g_.sync();  // everyone has read the slots
    write(t, acc);
  }
  void all_gather(Tensor& out, const Tensor& in) override {
    publish(in);
    const int64_t n = in.numel();
    if (out.numel() != n * size()) throw std::runtime_error("ThreadComm: all_gather out has the wrong size");
    std::vector<double> acc;
    for (const Tensor& s : g_.slots()) {
      if (s.numel() != n) throw std::runtime_error("ThreadComm: all_gather of unequal sizes");
      for (int64_t i = 0; i < n; i++) acc.push_back(s.at(i));
    }
    g_.sync();
    write(out, acc);
  }
  void broadcast(Tensor& t, int root) override {
    publish(t);
    const Tensor& s = g_.slots()[static_cast<size_t>(root)];
    std::vector<double> acc;
    for (int64_t i = 0; i < s.numel(); i++) acc.push_back(s.at(i));
    g_.sync();
    write(t, acc);
  }
  void barrier() override { g_.sync(); }

 private:
  void publish(const Tensor& t) {
    g_.slots()[static_cast<size_t>(rank_)] = t.to(Device::cpu()).clone();
    if (rank_ == 0) g_.calls++;
    g_.sync();
  }
  static void write(Tensor& t, const std::vector<double>& v) {
    Tensor h = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
    t.copy_from(h.to(t.dtype()).view(t.shape()));
  }
  ThreadGroup& g_;
  int rank_;
};

// Runs f(comm, rank) on n threads, one ThreadComm each; rethrows the first error.
inline void run_ranks(int n, const std::function<void(Communicator&, int)>& f) {
  ThreadGroup g(n);
  std::vector<std::thread> th;
  std::vector<std::exception_ptr> err(static_cast<size_t>(n));
  for (int r = 0; r < n; r++)
    th.emplace_back([&, r] {
      ThreadComm c(g, r);
      try {
        f(c, r);
      } catch (...) {
        err[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : th) t.join();
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
}

}  // namespace simclr::test
