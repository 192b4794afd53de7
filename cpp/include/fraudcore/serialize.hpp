// The fraudcore binary format: one envelope for every saved model.
//
// Layout (all integers little-endian, as written by ByteWriter):
//
//   offset  size  field
//   0       8     magic "\x89FRC\r\n\x1a\n" (PNG-style: catches text-mode
//                 transfers and files that are not fraudcore models)
//   8       4     format version (kFormatVersion)
//   12      4     byte-order mark 0x01020304
//   16      4+k   kind: u32 length, then k bytes ("IsolationForest", ...)
//   ...     8+m   metadata: u64 length, then m bytes (UTF-8 JSON from Python)
//   ...     8+b   body: u64 length, then b bytes (the native model)
//   end-4   4     CRC-32 (IEEE) of every preceding byte
//
// unpack_envelope() checks, in order: magic, byte order, declared lengths
// against the data (truncation), the checksum (corruption), then the format
// version (a newer file). Each failure throws FormatError with a message
// that says which. ByteReader never reads past its buffer: a short read
// throws FormatError, so a body parser cannot crash on hostile input.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fraudcore/error.hpp"

namespace fraudcore {

constexpr std::uint32_t kFormatVersion = 1;

/// CRC-32 (IEEE 802.3 polynomial, as zlib's crc32) of `data`.
std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

/// Appends fixed-width little-endian values to a byte string.
class ByteWriter {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_arithmetic<T>::value, "put() takes numbers");
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    if (!little_endian()) reverse(bytes, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  template <class T>
  void put_vector(const std::vector<T>& values) {
    put<std::uint64_t>(values.size());
    for (const T& v : values) put(v);
  }
  void put_string(std::string_view s) {
    put<std::uint64_t>(s.size());
    out_.append(s.data(), s.size());
  }
  std::string& bytes() { return out_; }

  static bool little_endian() {
    const std::uint16_t one = 1;
    char first;
    std::memcpy(&first, &one, 1);
    return first == 1;
  }
  static void reverse(char* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n / 2; ++i) std::swap(bytes[i], bytes[n - 1 - i]);
  }

 private:
  std::string out_;
};

/// Reads what ByteWriter wrote; throws FormatError instead of overrunning.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data, const char* what = "model data")
      : data_(data), what_(what) {}

  template <class T>
  T get() {
    static_assert(std::is_arithmetic<T>::value, "get() returns numbers");
    require(sizeof(T));
    char bytes[sizeof(T)];
    std::memcpy(bytes, data_.data() + pos_, sizeof(T));
    if (!ByteWriter::little_endian()) ByteWriter::reverse(bytes, sizeof(T));
    pos_ += sizeof(T);
    T value;
    std::memcpy(&value, bytes, sizeof(T));
    return value;
  }
  template <class T>
  std::vector<T> get_vector() {
    const auto n = get<std::uint64_t>();
    if (n > remaining() / sizeof(T)) truncated();
    std::vector<T> values(static_cast<std::size_t>(n));
    for (auto& v : values) v = get<T>();
    return values;
  }
  std::string_view get_string() {
    const auto n = get<std::uint64_t>();
    require(n);
    std::string_view s = data_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::size_t remaining() const { return data_.size() - pos_; }
  std::size_t position() const { return pos_; }
  /// Throws FormatError unless every byte was consumed.
  void expect_end() const;

 private:
  void require(std::uint64_t n) const {
    if (n > remaining()) truncated();
  }
  [[noreturn]] void truncated() const;

  std::string_view data_;
  const char* what_;
  std::size_t pos_ = 0;
};

struct Envelope {
  std::uint32_t format_version = kFormatVersion;
  std::string kind;
  std::string metadata;
  std::string body;
};

/// Wrap a model body and its metadata in the envelope described above.
std::string pack_envelope(std::string_view kind, std::string_view metadata,
                          std::string_view body);

/// Validate and open an envelope. Throws FormatError (see header comment).
Envelope unpack_envelope(std::string_view data);

}  // namespace fraudcore
