// snapshot/pointer_map.h — the encoder's memo: an open-addressing hash map from object address to
// memo id (linear probing, power-of-two capacity, load factor <= 1/2). No per-entry allocation,
// unlike std::unordered_map, which dominated the profile of large dumps.
#pragma once

#include <cstdint>
#include <vector>

namespace stasis::snapshot {

class PointerMap {
 public:
  PointerMap() : slots_(1024) {}
  // The id stored for `key`, or nullptr.
  const uint64_t* find(const void* key) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == nullptr) return nullptr;
    }
  }
  void insert(const void* key, uint64_t value) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    place(key, value);
    ++size_;
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    const void* key = nullptr;
    uint64_t value = 0;
  };
  static size_t hash(const void* p) {
    uint64_t x = reinterpret_cast<uintptr_t>(p) >> 4;
    x *= 0x9E3779B97F4A7C15ull;
    return size_t(x ^ (x >> 29));
  }
  void place(const void* key, uint64_t value) {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i].key == nullptr || slots_[i].key == key) {
        slots_[i] = Slot{key, value};
        return;
      }
    }
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    for (const Slot& s : old)
      if (s.key) place(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace stasis::snapshot
