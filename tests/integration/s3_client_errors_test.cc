// CurlClient's failures against a real s3rver: each error names its cause and carries the
// errno the layers above act on; plus unsigned requests and the shared connection pool.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "s3/curl_client.h"
#include "test_server.h"

namespace s3cachefs::testing {
namespace {

// A closed loopback port: bound once, never listening.
int ClosedPort() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  static_cast<void>(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  socklen_t len = sizeof(addr);
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);
  return ntohs(addr.sin_port);
}

class S3ClientErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(S3rverEndpoint().empty()) << "no s3rver"; }
};

TEST_F(S3ClientErrorsTest, MissingKeyIsEnoent) {
  const std::string bucket = MakeBucket("errors");
  auto client = MakeClient(bucket);
  ASSERT_TRUE(client);
  Result<s3::ObjectInfo> head = client->HeadObject("nope/missing");
  EXPECT_EQ(head.status().code(), ENOENT) << head.status().ToString();
  s3::StringSink sink;
  Result<s3::GetResult> get = client->GetObject({"nope/missing", std::nullopt, "", ""}, sink);
  EXPECT_EQ(get.status().code(), ENOENT) << get.status().ToString();
  EXPECT_NE(get.status().message().find("nope/missing"), std::string::npos);
  EXPECT_TRUE(client->CheckBucket().ok());
}

TEST_F(S3ClientErrorsTest, UnknownBucketIsEnoentNamingIt) {
  auto client = MakeClient("no-such-bucket-here");
  ASSERT_TRUE(client);
  Status s = client->CheckBucket();
  EXPECT_EQ(s.code(), ENOENT) << s.ToString();
  EXPECT_NE(s.message().find("bucket no-such-bucket-here does not exist"), std::string::npos)
      << s.message();
}

TEST_F(S3ClientErrorsTest, UnknownAccessKeyIsEacces) {
  const std::string bucket = MakeBucket("badkey");
  s3::ClientConfig config = TestConfig(bucket);
  config.credentials.access_key_id = "NOTAKEYID";
  auto client = MakeClient(config);
  ASSERT_TRUE(client);
  Status s = client->CheckBucket();
  EXPECT_EQ(s.code(), EACCES) << s.ToString();
  EXPECT_NE(s.message().find("access key id is unknown"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("S3RVER"), std::string::npos) << "no secrets in messages";
}

TEST_F(S3ClientErrorsTest, WrongSecretIsEacces) {
  const std::string bucket = MakeBucket("badsecret");
  s3::ClientConfig config = TestConfig(bucket);
  config.credentials.secret_access_key = "wrong-secret";
  auto client = MakeClient(config);
  ASSERT_TRUE(client);
  Status s = client->CheckBucket();
  if (s.ok()) GTEST_SKIP() << "s3rver 3.7.1 does not verify SigV4 signatures, only key ids";
  EXPECT_EQ(s.code(), EACCES) << s.ToString();
  EXPECT_NE(s.message().find("signature mismatch"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("wrong-secret"), std::string::npos);
}

TEST_F(S3ClientErrorsTest, UnreachableEndpointFailsFastAndClearly) {
  s3::ClientConfig config = TestConfig("any-bucket");
  config.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  auto client = MakeClient(config);
  ASSERT_TRUE(client);
  const auto start = std::chrono::steady_clock::now();
  Status s = client->CheckBucket();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), EHOSTUNREACH) << s.ToString();
  EXPECT_NE(s.message().find("cannot reach endpoint URL " + config.endpoint), std::string::npos)
      << s.message();
  EXPECT_LT(elapsed, std::chrono::seconds(3));  // a few quick retries, no long waits
  EXPECT_EQ(client->stats().requests.load(), static_cast<uint64_t>(config.retry.max_attempts));
}

TEST_F(S3ClientErrorsTest, AnonymousRequestsAreUnsigned) {
  const std::string bucket = MakeBucket("anon");
  AwsPut(bucket, "public", WriteScratchFile("anon-src", "open data"));
  s3::ClientConfig config = TestConfig(bucket);
  config.credentials = {};
  auto client = MakeClient(config);
  ASSERT_TRUE(client);
  s3::StringSink sink;
  Result<s3::GetResult> r = client->GetObject({"public", std::nullopt, "", ""}, sink);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(sink.data(), "open data");
}

TEST_F(S3ClientErrorsTest, ConcurrentGetsShareThePool) {
  const std::string bucket = MakeBucket("concurrent");
  const std::string data = Pattern(200000, 5);
  AwsPut(bucket, "obj", WriteScratchFile("concurrent-src", data));
  s3::ClientConfig config = TestConfig(bucket);
  config.max_connections = 3;
  auto client = MakeClient(config);
  ASSERT_TRUE(client);
  std::vector<std::thread> threads;
  threads.reserve(8);
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const uint64_t first = static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i) * 10;
        s3::StringSink sink;
        Result<s3::GetResult> r =
            client->GetObject({"obj", s3::ByteRange{first, first + 999}, "", ""}, sink);
        if (r.ok() && sink.data() == data.substr(first, 1000)) good++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 80);
  EXPECT_EQ(client->stats().get_requests.load(), 80u);
  EXPECT_EQ(client->stats().bytes_received.load(), 80000u);
  EXPECT_EQ(client->stats().errors.load(), 0u);
}

}  // namespace
}  // namespace s3cachefs::testing
