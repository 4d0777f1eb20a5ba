// 64-byte aligned scratch buffers. Workspace grows on demand and is reused between calls
// (thread_local per purpose), so hot loops never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace fastconv {

constexpr std::size_t kAlignment = 64;  // cache line; also the AVX-512 vector size

template <typename T>
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { std::free(data_); }

    // Pointer to at least n elements; contents unspecified after a grow.
    T* get(std::size_t n) {
        if (n > capacity_) {
            if (n > (SIZE_MAX - kAlignment) / sizeof(T)) throw std::bad_alloc();
            std::free(data_);
            data_ = nullptr;
            capacity_ = 0;
            std::size_t bytes = (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
            data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
            if (!data_) throw std::bad_alloc();
            capacity_ = n;
        }
        return data_;
    }

  private:
    T* data_ = nullptr;
    std::size_t capacity_ = 0;
};

// A thread's reusable scratch buffer for element type T, distinguished by Tag.
template <typename T, int Tag>
T* thread_scratch(std::size_t n) {
    thread_local AlignedBuffer<T> buf;
    return buf.get(n);
}

}  // namespace fastconv
