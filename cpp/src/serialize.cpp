#include "fraudcore/serialize.hpp"

#include <array>

namespace fraudcore {
namespace {

constexpr char kMagic[8] = {'\x89', 'F', 'R', 'C', '\r', '\n', '\x1a', '\n'};
constexpr std::uint32_t kByteOrderMark = 0x01020304;
constexpr std::size_t kChecksumSize = 4;

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

}  // namespace

std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
  static const std::array<std::uint32_t, 256> table = make_crc_table();
  crc = ~crc;
  for (unsigned char byte : data) crc = table[(crc ^ byte) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

void ByteReader::expect_end() const {
  if (remaining() != 0) {
    throw FormatError(std::string(what_) + " has " +
                      std::to_string(remaining()) +
                      " unexpected trailing bytes; the file is corrupted");
  }
}

void ByteReader::truncated() const {
  throw FormatError(std::string(what_) + " is truncated at byte " +
                    std::to_string(pos_) + " of " +
                    std::to_string(data_.size()));
}

std::string pack_envelope(std::string_view kind, std::string_view metadata,
                          std::string_view body) {
  ByteWriter w;
  w.bytes().append(kMagic, sizeof(kMagic));
  w.put<std::uint32_t>(kFormatVersion);
  w.put<std::uint32_t>(kByteOrderMark);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(kind.size()));
  w.bytes().append(kind.data(), kind.size());
  w.put_string(metadata);
  w.put_string(body);
  w.put<std::uint32_t>(crc32(w.bytes()));
  return std::move(w.bytes());
}

Envelope unpack_envelope(std::string_view data) {
  if (data.size() < sizeof(kMagic) ||
      data.substr(0, sizeof(kMagic)) != std::string_view(kMagic, sizeof(kMagic))) {
    throw FormatError(
        "not a fraudcore model file (the magic bytes at its start are "
        "missing or wrong)");
  }
  ByteReader r(data.substr(sizeof(kMagic)), "fraudcore model file");
  Envelope env;
  env.format_version = r.get<std::uint32_t>();
  if (r.get<std::uint32_t>() != kByteOrderMark) {
    throw FormatError(
        "fraudcore model file has an unknown byte order; it is corrupted");
  }
  const auto kind_size = r.get<std::uint32_t>();
  if (kind_size > 256) {
    throw FormatError("fraudcore model file is corrupted (model kind of " +
                      std::to_string(kind_size) + " bytes)");
  }
  std::string_view rest = data.substr(sizeof(kMagic) + r.position());
  if (rest.size() < kind_size) {
    throw FormatError("fraudcore model file is truncated in its header");
  }
  env.kind.assign(rest.data(), kind_size);
  ByteReader sections(rest.substr(kind_size), "fraudcore model file");
  env.metadata = std::string(sections.get_string());
  env.body = std::string(sections.get_string());
  if (sections.remaining() < kChecksumSize) {
    throw FormatError("fraudcore model file is truncated before its checksum");
  }
  const std::size_t checked = data.size() - sections.remaining();
  const auto stored = ByteReader(data.substr(checked)).get<std::uint32_t>();
  if (sections.remaining() != kChecksumSize) {
    throw FormatError("fraudcore model file has " +
                      std::to_string(sections.remaining() - kChecksumSize) +
                      " unexpected trailing bytes; it is corrupted");
  }
  if (stored != crc32(data.substr(0, checked))) {
    throw FormatError(
        "fraudcore model file is corrupted (checksum mismatch)");
  }
  if (env.format_version > kFormatVersion) {
    throw FormatError("fraudcore model file has format version " +
                      std::to_string(env.format_version) +
                      ", newer than this fraudcore reads (" +
                      std::to_string(kFormatVersion) +
                      "); upgrade fraudcore to load it");
  }
  if (env.format_version == 0) {
    throw FormatError("fraudcore model file has format version 0; it is corrupted");
  }
  return env;
}

}  // namespace fraudcore
