#include "s3/http.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace s3cachefs::s3 {
namespace {

TEST(HttpTest, HeaderLines) {
  long status = 0;
  ResponseHeaders h;
  EXPECT_TRUE(ParseHeaderLine("HTTP/1.1 100 Continue\r\n", &status, &h));
  EXPECT_EQ(status, 100);
  EXPECT_TRUE(ParseHeaderLine("X-Interim: 1\r\n", &status, &h));
  EXPECT_TRUE(ParseHeaderLine("HTTP/2 206 \r\n", &status, &h));  // a new answer clears headers
  EXPECT_EQ(status, 206);
  EXPECT_TRUE(h.empty());
  EXPECT_TRUE(ParseHeaderLine("ETag: \"abc\"\r\n", &status, &h));
  EXPECT_TRUE(ParseHeaderLine("x-amz-meta-Color:  blue \r\n", &status, &h));
  EXPECT_TRUE(ParseHeaderLine("Empty:\r\n", &status, &h));
  EXPECT_FALSE(ParseHeaderLine("\r\n", &status, &h));
  EXPECT_EQ(h["etag"], "\"abc\"");
  EXPECT_EQ(h["X-AMZ-META-COLOR"], "blue");
  EXPECT_EQ(h.count("empty"), 1u);
}

// A closed loopback port: the failure is a quick, classified connection error.
TEST(HttpTest, ConnectionRefused) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);  // bound, never listened: nothing answers on this port
  Result<std::unique_ptr<HttpClient>> http = HttpClient::Create({});
  ASSERT_TRUE(http.ok());
  HttpRequest req;
  req.method = "GET";
  req.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/b/k";
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = (*http)->Perform(req, nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(r.transport_failed);
  EXPECT_EQ(r.failure, TransportFailure::kConnect);
  EXPECT_FALSE(r.transport_message.empty());
}

TEST(HttpTest, UnreadableCaBundle) {
  HttpOptions o;
  o.ca_bundle = "/nonexistent/ca.pem";
  EXPECT_EQ(HttpClient::Create(o).status().code(), ENOENT);
}

}  // namespace
}  // namespace s3cachefs::s3
