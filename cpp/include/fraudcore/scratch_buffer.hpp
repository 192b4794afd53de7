// Uninitialised scratch memory for large temporaries (hundreds of MB for a
// million-row feature table). Where the OS offers transparent huge pages
// (Linux, madvise mode), the buffer asks for them, so touching it costs a
// few hundred page faults instead of tens of thousands; elsewhere it is
// plain aligned memory. Elements are not constructed: the caller writes
// each one before reading it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fraudcore {

template <class T>
class ScratchBuffer {
  static_assert(std::is_trivially_copyable<T>::value && std::is_trivially_destructible<T>::value,
                "ScratchBuffer holds plain values");

 public:
  explicit ScratchBuffer(std::size_t n) : size_(n) {
    constexpr std::size_t kHugePage = std::size_t{2} << 20;
    const std::size_t bytes = (std::max<std::size_t>(n * sizeof(T), 1) + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, bytes);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
    data_.reset(static_cast<T*>(p));
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](std::size_t i) { return data_.get()[i]; }
  const T& operator[](std::size_t i) const { return data_.get()[i]; }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  std::size_t size_;
};

}  // namespace fraudcore
