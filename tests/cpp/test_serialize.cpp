#include <gtest/gtest.h>

#include "fraudcore/serialize.hpp"

using namespace fraudcore;

TEST(Crc32, MatchesZlibCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
}

TEST(ByteIo, RoundTripsNumbersVectorsAndStrings) {
  ByteWriter w;
  w.put<std::int32_t>(-7);
  w.put<double>(3.25);
  w.put_vector(std::vector<std::int64_t>{1, -2, 3});
  w.put_string("abc");
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get<std::int32_t>(), -7);
  EXPECT_EQ(r.get<double>(), 3.25);
  EXPECT_EQ(r.get_vector<std::int64_t>(), (std::vector<std::int64_t>{1, -2, 3}));
  EXPECT_EQ(r.get_string(), "abc");
  EXPECT_NO_THROW(r.expect_end());
}

TEST(ByteIo, ShortReadsThrowInsteadOfOverrunning) {
  ByteWriter w;
  w.put<std::uint64_t>(1'000'000'000'000ULL);  // a vector length far beyond the data
  ByteReader r(w.bytes());
  EXPECT_THROW(r.get_vector<double>(), FormatError);
  ByteReader empty("");
  EXPECT_THROW(empty.get<std::int32_t>(), FormatError);
}

TEST(Envelope, RoundTrip) {
  const std::string packed = pack_envelope("Kind", "{\"a\": 1}", std::string("\0body", 5));
  const Envelope env = unpack_envelope(packed);
  EXPECT_EQ(env.kind, "Kind");
  EXPECT_EQ(env.metadata, "{\"a\": 1}");
  EXPECT_EQ(env.body, std::string("\0body", 5));
  EXPECT_EQ(env.format_version, kFormatVersion);
}

TEST(Envelope, EveryTruncationAndEveryBitFlipIsRejected) {
  const std::string packed = pack_envelope("Kind", "meta", "body bytes");
  for (std::size_t cut = 0; cut < packed.size(); ++cut) {
    EXPECT_THROW(unpack_envelope(packed.substr(0, cut)), FormatError) << "cut at " << cut;
  }
  for (std::size_t i = 0; i < packed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = packed;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_THROW(unpack_envelope(bad), FormatError) << "byte " << i << " bit " << bit;
    }
  }
  EXPECT_THROW(unpack_envelope(packed + "x"), FormatError);
}

TEST(Envelope, NewerFormatVersionIsNamed) {
  std::string packed = pack_envelope("Kind", "", "");
  packed[8] = static_cast<char>(kFormatVersion + 1);
  ByteWriter crc;
  crc.put<std::uint32_t>(crc32(std::string_view(packed).substr(0, packed.size() - 4)));
  packed.replace(packed.size() - 4, 4, crc.bytes());
  try {
    unpack_envelope(packed);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}
