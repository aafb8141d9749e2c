#include "s3/crypto.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace s3cachefs::s3 {
namespace {

TEST(CryptoTest, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Base64Encode(Md5("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HashOfFileRegion) {
  char path[] = "/tmp/s3_crypto_testXXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::string data(3 << 20, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  Result<std::string> h = Sha256HexOfRegion({fd, 100, 2 << 20});
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, Sha256Hex(data.substr(100, 2 << 20)));
  Result<std::string> empty = Sha256HexOfRegion({fd, 5, 0});
  EXPECT_EQ(*empty, kEmptySha256);
  Result<std::string> past = Sha256HexOfRegion({fd, data.size() - 10, 20});
  EXPECT_EQ(past.status().code(), EIO);
  close(fd);
  Result<std::string> bad = Sha256HexOfRegion({fd, 0, 10});
  EXPECT_EQ(bad.status().code(), EBADF);
}

}  // namespace
}  // namespace s3cachefs::s3
