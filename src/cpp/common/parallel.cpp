#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#endif

namespace fastconv {

namespace {
int default_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

bool default_load_aware() {
    const char* v = std::getenv("FASTCONV_LOAD_AWARE");
    return !(v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 ||
                   std::strcmp(v, "off") == 0));
}

std::atomic<int> g_requested{default_threads()};
std::atomic<bool> g_load_aware{default_load_aware()};
std::atomic<int> g_forced_cap{0};          // tests: a fixed cap, 0 = measured
std::atomic<int> g_cap{kMaxThreads};       // cores the other processes leave free
std::atomic<int64_t> g_next_sample_ns{0};  // steady clock
std::atomic<int64_t> g_capped{0};          // num_threads() answers below the request
std::atomic<double> g_other_cpus{-1.0};    // the last measurement, -1 before the first
// Whether a kernel may have started OpenMP's thread pool (num_threads() answered > 1), and
// whether this process is a child forked after that: GNU OpenMP cannot start its threads
// again in such a child, whose first region of 2+ threads never returns (measured: a
// 2-thread GEMM in a child of a process that ran one hangs), so its kernels run on one,
// as torch's do after fork.
std::atomic<bool> g_pool_started{false}, g_forked_single{false};
std::atomic<int> g_cpus{0};                // CPUs in the affinity mask at that time

// The load is sampled at most every kSampleNs, on the calling thread (~11 us: reading
// /proc/stat), and judged over the newest sample at least kWindowNs old: /proc/stat counts
// in 10 ms ticks, so a shorter window could not tell a busy core from noise.
constexpr int64_t kSampleNs = 25'000'000, kWindowNs = 100'000'000;

int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

#if defined(__linux__)
struct Sample {
    int64_t wall_ns = 0;
    int64_t busy_ticks = 0;  // user + nice + system + irq + softirq + steal, our CPUs
    int64_t own_ns = 0;      // this process's CPU time, all its threads
    int cpus = 0;
};

// Held by the one thread sampling (taken with exchange, never waited on); the sample
// state below is touched only while holding it.
std::atomic<bool> g_sampling{false};

// One sample of /proc/stat over the CPUs this process may run on; false if unreadable.
bool take_sample(Sample* s) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return false;
    static char buf[1 << 16];
    const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = 0;
    for (ssize_t r; n < static_cast<ssize_t>(sizeof(buf)) - 1 &&
                    (r = read(fd, buf + n, sizeof(buf) - 1 - static_cast<size_t>(n))) > 0;)
        n += r;
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    timespec ts{};
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return false;
    s->own_ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    s->wall_ns = steady_ns();
    s->busy_ticks = 0;
    s->cpus = 0;
    // The cpu lines come first: "cpuN user nice system idle iowait irq softirq steal guest
    // guest_nice" (guest time is already in user), after the "cpu " total.
    for (const char* line = buf; std::strncmp(line, "cpu", 3) == 0;) {
        const char* next = std::strchr(line, '\n');
        if (!next) break;  // a line cut by the buffer's end
        if (line[3] >= '0' && line[3] <= '9') {
            char* q = nullptr;
            const long id = std::strtol(line + 3, &q, 10);
            if (id >= 0 && id < CPU_SETSIZE && CPU_ISSET(static_cast<int>(id), &set)) {
                long long v[8];
                for (long long& f : v) {
                    char* e = nullptr;
                    f = std::strtoll(q, &e, 10);
                    if (e == q) return false;
                    q = e;
                }
                s->busy_ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
                ++s->cpus;
            }
        }
        line = next + 1;
    }
    return s->cpus > 0;
}

constexpr int kRing = 16;
Sample g_ring[kRing];
int g_ring_next = 0, g_ring_count = 0;

// A forked child starts with no samples: its CPU time restarts from zero, and the parent's
// samples would make the other processes' share negative or huge. (A fork taken while
// the parent sampled would also leave g_sampling set for good.)
void reset_after_fork() {
    if (g_pool_started.load(std::memory_order_relaxed))
        g_forked_single.store(true, std::memory_order_relaxed);
    g_ring_next = g_ring_count = 0;
    g_next_sample_ns.store(0, std::memory_order_relaxed);
    g_sampling.store(false, std::memory_order_relaxed);
}
const bool g_atfork = pthread_atfork(nullptr, nullptr, reset_after_fork) == 0;

// Samples the load and updates g_cap: the CPUs of the affinity mask, less the CPU time
// other processes (and the hypervisor's steal) took since the newest sample at least
// kWindowNs old, rounded to whole cores.
void sample_load() {
    if (g_sampling.exchange(true, std::memory_order_acquire)) return;  // another thread does
    struct Release {
        ~Release() { g_sampling.store(false, std::memory_order_release); }
    } release;
    Sample now;
    if (!take_sample(&now)) {
        g_next_sample_ns.store(steady_ns() + 1000 * kSampleNs, std::memory_order_relaxed);
        return;
    }
    const Sample* base = nullptr;
    for (int i = 1; i <= g_ring_count; ++i) {
        const Sample& s = g_ring[(g_ring_next - i + kRing) % kRing];
        if (now.wall_ns - s.wall_ns >= kWindowNs) {
            base = &s;
            break;
        }
    }
    if (base && base->cpus == now.cpus) {
        static const long hz = sysconf(_SC_CLK_TCK);
        const double wall = static_cast<double>(now.wall_ns - base->wall_ns) * 1e-9;
        const double busy = static_cast<double>(now.busy_ticks - base->busy_ticks) /
                            static_cast<double>(hz > 0 ? hz : 100);
        const double own = static_cast<double>(now.own_ns - base->own_ns) * 1e-9;
        const double other = std::max(0.0, (busy - own) / wall);
        g_other_cpus.store(other, std::memory_order_relaxed);
        g_cpus.store(now.cpus, std::memory_order_relaxed);
        const double free_cpus = static_cast<double>(now.cpus) - other;
        g_cap.store(std::max(1, static_cast<int>(free_cpus + 0.5)), std::memory_order_relaxed);
    }
    g_ring[g_ring_next] = now;
    g_ring_next = (g_ring_next + 1) % kRing;
    g_ring_count = std::min(g_ring_count + 1, kRing);
    g_next_sample_ns.store(now.wall_ns + kSampleNs, std::memory_order_relaxed);
}
#else
void sample_load() {
    g_next_sample_ns.store(INT64_MAX, std::memory_order_relaxed);
}
#endif
}  // namespace

int requested_threads() {
    return g_requested.load(std::memory_order_relaxed);
}

int current_threads() {
    const int n = requested_threads();
    if (n == 1 || g_forked_single.load(std::memory_order_relaxed)) return 1;
    int cap = g_forced_cap.load(std::memory_order_relaxed);
    if (cap == 0)
        cap = g_load_aware.load(std::memory_order_relaxed) ? g_cap.load(std::memory_order_relaxed)
                                                           : n;
    return cap < n ? cap : n;
}

int num_threads() {
    const int n = requested_threads();
    if (n == 1 || g_forked_single.load(std::memory_order_relaxed)) return 1;
    if (g_forced_cap.load(std::memory_order_relaxed) == 0 &&
        g_load_aware.load(std::memory_order_relaxed) &&
        steady_ns() >= g_next_sample_ns.load(std::memory_order_relaxed))
        sample_load();
    const int threads = current_threads();
    if (threads < n) g_capped.fetch_add(1, std::memory_order_relaxed);
    if (threads > 1 && !g_pool_started.load(std::memory_order_relaxed))
        g_pool_started.store(true, std::memory_order_relaxed);
    return threads;
}

bool forked_single() {
    return g_forked_single.load(std::memory_order_relaxed);
}

int explicit_threads(int n) {
    if (n <= 1 || g_forked_single.load(std::memory_order_relaxed)) return 1;
    g_pool_started.store(true, std::memory_order_relaxed);
    return n;
}

void set_num_threads(int n) {
    g_requested.store(n < 1 ? 1 : n, std::memory_order_relaxed);
}

void set_load_aware(bool on) {
    g_load_aware.store(on, std::memory_order_relaxed);
}

void set_thread_cap(int cap) {
    g_forced_cap.store(cap < 0 ? 0 : cap, std::memory_order_relaxed);
}

LoadStatus load_status() {
    LoadStatus s;
    s.load_aware = g_load_aware.load(std::memory_order_relaxed);
    s.requested = requested_threads();
    s.forced_cap = g_forced_cap.load(std::memory_order_relaxed);
    s.cap = g_cap.load(std::memory_order_relaxed);
    s.other_cpus = g_other_cpus.load(std::memory_order_relaxed);
    s.cpus = g_cpus.load(std::memory_order_relaxed);
    s.capped = g_capped.load(std::memory_order_relaxed);
    return s;
}

}  // namespace fastconv
