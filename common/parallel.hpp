// Exceptions and OpenMP: an exception may not leave a parallel region (the runtime calls
// std::terminate, exit 134). thread_errors catches what a thread throws (std::bad_alloc under a
// memory limit, an input_error found in a row), makes the other threads skip the rest of their
// work, and rethrows the first one on the calling thread once the region has ended.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

namespace calibench {

/// Starts the OpenMP thread pool now. libgomp creates its threads at the first parallel region
/// and ends the process when it cannot ("Thread creation failed", exit 1): under a memory limit
/// that happens in the middle of a computation unless the pool exists before the large
/// allocations. Later regions reuse these threads. Each thread also throws and catches once:
/// the first exception a thread throws allocates its per-thread exception state (libstdc++'s
/// globals, dynamic TLS of a dlopen'd module), and glibc aborts the process when that allocation
/// fails ("cannot allocate memory for thread-local data"), as it can for a std::bad_alloc thrown
/// in a worker under a memory limit (seen once in tests/hostile/test_memory.py under CI load).
inline int start_thread_pool() {
  std::atomic<int> started{0};  // a region with an empty body is compiled away
#pragma omp parallel
  {
    try {
      throw 0;
    } catch (int) {
      started.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return started.load();
}

class thread_errors {
 public:
  /// Runs `work()` unless a thread already failed; keeps the first exception it throws.
  template <class F>
  void run(F&& work) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      work();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  /// Rethrows the first exception of any thread (call after the parallel region).
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace calibench
