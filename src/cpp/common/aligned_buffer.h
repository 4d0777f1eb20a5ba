// 64-byte aligned scratch buffers. Workspace grows on demand and is reused between calls
// (thread_local per purpose), so hot loops never allocate and steady-state calls of the
// same shapes never touch the allocator.
//
// Accounting (fastconv._core.workspace_stats, the benchmark's JSON): every buffer keeps
// the largest request made of it since the last reset; call_bytes sums those over all
// buffers of all threads, i.e. the extra memory the calls since the reset needed at once.
// held_bytes is the capacity every scratch buffer keeps allocated.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace fastconv {

constexpr std::size_t kAlignment = 64;  // cache line; also the AVX-512 vector size

namespace workspace {
inline std::atomic<uint64_t> epoch{1};        // bumped by reset()
inline std::atomic<int64_t> call_bytes{0};    // see above
inline std::atomic<int64_t> held_bytes{0};

// Starts a new accounting window; returns the call_bytes of the one it closes.
inline int64_t reset() {
    const int64_t closed = call_bytes.exchange(0);
    epoch.fetch_add(1);
    return closed;
}
}  // namespace workspace

template <typename T>
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() {
        std::free(data_);
        workspace::held_bytes.fetch_sub(static_cast<int64_t>(capacity_ * sizeof(T)));
    }

    // Pointer to at least n elements; contents unspecified after a grow.
    T* get(std::size_t n) {
        if (n > capacity_) {
            if (n > (SIZE_MAX - kAlignment) / sizeof(T)) throw std::bad_alloc();
            std::free(data_);
            workspace::held_bytes.fetch_sub(static_cast<int64_t>(capacity_ * sizeof(T)));
            data_ = nullptr;
            capacity_ = 0;
            std::size_t bytes = (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
            data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
            if (!data_) throw std::bad_alloc();
            capacity_ = n;
            workspace::held_bytes.fetch_add(static_cast<int64_t>(capacity_ * sizeof(T)));
        }
        account(n);
        return data_;
    }

  private:
    // This buffer's largest request in the current window, added to call_bytes.
    void account(std::size_t n) {
        const uint64_t e = workspace::epoch.load(std::memory_order_relaxed);
        if (e != epoch_) {
            epoch_ = e;
            peak_ = 0;
        }
        if (n > peak_) {
            workspace::call_bytes.fetch_add(static_cast<int64_t>((n - peak_) * sizeof(T)),
                                            std::memory_order_relaxed);
            peak_ = n;
        }
    }

    T* data_ = nullptr;
    std::size_t capacity_ = 0;
    uint64_t epoch_ = 0;
    std::size_t peak_ = 0;  // elements
};

// A thread's reusable scratch buffer for element type T, distinguished by Tag.
template <typename T, int Tag>
T* thread_scratch(std::size_t n) {
    thread_local AlignedBuffer<T> buf;
    return buf.get(n);
}

}  // namespace fastconv
