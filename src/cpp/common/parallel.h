// Thread-count knob and work-sharing helpers shared by every driver.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {

// Threads requested by fc.set_num_threads; defaults to OpenMP's max threads.
int requested_threads();
void set_num_threads(int n);  // 1 <= n <= kMaxThreads, validated by the binding
constexpr int kMaxThreads = 1024;

// Threads a driver may use now: requested_threads(), less the cores other processes keep
// busy (load-aware mode, the default; FASTCONV_LOAD_AWARE=0 turns it off). The load is
// this process's CPUs in /proc/stat minus its own CPU time, over the last ~0.1 s, rounded
// to whole cores. Why: a parallel region waits for its slowest thread, and a thread
// sharing a core with another process runs in its time slices (measured on this 2-core
// host with a busy loop on one core: a 512^3 GEMM 3.3x slower at 2 threads than at 1, a
// CifarNet step 1.2x). Results never depend on it: work whose result depends on how it
// is split (the reductions of for_each_slice) splits by requested_threads().
int num_threads();
// num_threads()'s answer from the last load sample: takes no sample and counts no capped
// decision (team_for asks it once per region, after the caller's num_threads()).
int current_threads();

// Whether this process was forked after OpenMP's threads started: its kernels then run on
// one thread (GNU OpenMP cannot restart its pool in a forked child).
bool forked_single();
// The team for a region of an explicit size n (the machine probes), not load-aware: n, or
// 1 in such a forked child; notes the pool as started when > 1.
int explicit_threads(int n);

// Load-aware mode on or off (default: on unless FASTCONV_LOAD_AWARE is 0/false/off).
void set_load_aware(bool on);
// Tests: num_threads() capped at `cap` regardless of the load (0: the measured cap).
void set_thread_cap(int cap);

struct LoadStatus {
    bool load_aware;
    int requested, forced_cap, cap;  // cap: cores the last measurement left free
    double other_cpus;               // CPUs other processes took; -1 before a measurement
    int cpus;                        // CPUs in this process's affinity mask
    int64_t capped;                  // num_threads() answers below the request so far
};
LoadStatus load_status();

// Threads of the current team (1 outside a parallel region).
inline int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// Threads for a parallel loop of `items` independent iterations: never more than items.
inline int threads_for(int64_t items) {
    const int64_t n = num_threads();
    return static_cast<int>(items < 1 ? 1 : (items < n ? items : n));
}

// The team size a parallel region of nt > 1 threads asks OpenMP for: at least num_threads(),
// so that consecutive regions ask for the same team whatever their work; threads past the
// work claim nothing or get empty ranges. Why: GNU OpenMP ends the pool's surplus threads
// whenever a region asks for fewer threads than the previous one, and the next larger
// region creates them again, with fresh stacks and every thread_local scratch buffer
// allocated and page-faulted anew (LeNet-5 training steps at b64 and 16 threads: 36
// threads created in 10 steps on the 2-core host; 163 page faults a step on a 16-core
// Xeon). A one-thread region (num_threads(1) or a false `if` clause) leaves the pool
// alone, so nt <= 1 stays 1 (checked with libgomp: 4, 1, 4... creates no thread).
inline int team_for(int nt) {
    const int n = current_threads();
    return nt <= 1 ? 1 : (nt > n ? nt : n);
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Chunk size for `schedule(dynamic, chunk)` over `items` independent iterations: about
// eight claims per thread. Dynamic claims, not a fixed split, because this host's vCPUs are
// shared: when another process holds one core, a static half of the work would wait for
// it (measured: a 2-thread call 2.3x slower than 1 thread), while claims let the free
// thread take most of the work. Used only where the result does not depend on which
// thread runs an item.
inline int64_t dynamic_chunk(int64_t items, int nthreads) {
    const int64_t c = items / (8 * static_cast<int64_t>(nthreads));
    return c < 1 ? 1 : c;
}

// [begin, end) of chunk `i` when `total` items are split into `parts` near-equal chunks.
inline void split_range(int64_t total, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t base = total / parts, rem = total % parts;
    *begin = i * base + (i < rem ? i : rem);
    *end = *begin + base + (i < rem ? 1 : 0);
}

// Exceptions cannot cross an OpenMP region's boundary (std::terminate): bodies that may
// throw (scratch allocation) run under run(), and the first exception is rethrown by
// rethrow() after the region has joined.
class RegionErrors {
  public:
    template <typename F>
    void run(F&& f) {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
    void rethrow() {
        if (error_) std::rethrow_exception(error_);
    }

  private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

// Runs run(i0, i1) over [0, n) on up to nthreads threads (never more than n), in ranges
// claimed dynamically (dynamic_chunk); one call on the calling thread when that leaves a
// single thread. Only where the result does not depend on which thread runs a range. An
// exception in run (scratch allocation) is carried out of the region and rethrown.
template <typename F>
void parallel_ranges(int64_t n, int nthreads, F&& run) {
    const int nt = static_cast<int>(n < nthreads ? n : nthreads);
    if (nt <= 1) {
        if (n > 0) run(int64_t{0}, n);
        return;
    }
    const int64_t chunk = dynamic_chunk(n, nt);
    RegionErrors errors;
#pragma omp parallel for schedule(dynamic) num_threads(team_for(nt))
    for (int64_t i0 = 0; i0 < n; i0 += chunk)
        errors.run([&] { run(i0, i0 + chunk < n ? i0 + chunk : n); });
    errors.rethrow();
}

// Runs slice(s) for s in [0, slices), each slice whole on one thread, claimed by up to
// num_threads() threads. For reductions whose bits depend on the split: the caller takes
// `slices` from requested_threads() and adds the slices' partials in slice order, so the
// result depends on fc.set_num_threads only, not on how many threads the load leaves.
template <typename F>
void for_each_slice(int slices, F&& slice) {
    parallel_ranges(slices, num_threads(), [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) slice(static_cast<int>(s));
    });
}

// Runs task(i, inner_threads) for i in [0, ntasks): whole tasks per thread (inner_threads
// = 1, claimed dynamically) when there are at least as many tasks as threads, else in order
// with inner_threads = num_threads() for the task to split itself. A task's exception
// (scratch allocation) is carried out of the parallel region and rethrown.
template <typename F>
void for_each_task(int64_t ntasks, F&& task) {
    const int nt = num_threads();
    if (nt > 1 && ntasks >= nt) {
        RegionErrors errors;
#pragma omp parallel for schedule(dynamic) num_threads(team_for(nt))
        for (int64_t i = 0; i < ntasks; ++i) errors.run([&] { task(i, 1); });
        errors.rethrow();
    } else {
        for (int64_t i = 0; i < ntasks; ++i) task(i, nt);
    }
}

}  // namespace fastconv
