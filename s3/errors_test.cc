#include "s3/errors.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

Status Map(long status, const std::string& code, const std::string& key = "k",
           const std::string& region = "") {
  S3Error e;
  e.http_status = status;
  e.code = code;
  e.bucket = "bkt";
  e.key = key;
  e.region = region;
  e.configured_region = "us-east-1";
  e.request_id = "REQ1";
  return MapS3Error(e);
}

bool Has(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST(ErrorsTest, NotFound) {
  Status s = Map(404, "NoSuchKey", "dir/file");
  EXPECT_EQ(s.code(), ENOENT);
  EXPECT_TRUE(Has(s, "dir/file")) << s.message();
  EXPECT_TRUE(Has(s, "REQ1")) << s.message();
  EXPECT_EQ(Map(404, "", "dir/file").code(), ENOENT);  // HEAD: no body
  s = Map(404, "NoSuchBucket");
  EXPECT_EQ(s.code(), ENOENT);
  EXPECT_TRUE(Has(s, "bucket bkt does not exist")) << s.message();
  s = Map(404, "", "");
  EXPECT_TRUE(Has(s, "bucket bkt does not exist")) << s.message();
  EXPECT_EQ(Map(404, "NoSuchUpload").code(), ENOENT);
}

TEST(ErrorsTest, Credentials) {
  Status s = Map(403, "InvalidAccessKeyId");
  EXPECT_EQ(s.code(), EACCES);
  EXPECT_TRUE(Has(s, "credentials rejected: the access key id is unknown")) << s.message();
  s = Map(403, "SignatureDoesNotMatch");
  EXPECT_EQ(s.code(), EACCES);
  EXPECT_TRUE(Has(s, "signature mismatch: check the secret key")) << s.message();
  EXPECT_EQ(Map(403, "AccessDenied").code(), EACCES);
  EXPECT_EQ(Map(403, "").code(), EACCES);
  EXPECT_EQ(Map(400, "ExpiredToken").code(), EACCES);
  EXPECT_EQ(Map(403, "RequestTimeTooSkewed").code(), EACCES);
  // A region header on an ordinary 403 that matches ours is not a region problem.
  EXPECT_EQ(Map(403, "", "", "us-east-1").code(), EACCES);
}

TEST(ErrorsTest, WrongRegion) {
  Status s = Map(301, "PermanentRedirect", "", "eu-west-1");
  EXPECT_EQ(s.code(), EREMOTE);
  EXPECT_TRUE(Has(s, "bucket bkt is in region eu-west-1; use region=eu-west-1")) << s.message();
  s = Map(400, "AuthorizationHeaderMalformed", "", "ap-south-1");
  EXPECT_TRUE(Has(s, "use region=ap-south-1")) << s.message();
  EXPECT_EQ(Map(301, "", "", "").code(), EREMOTE);
  EXPECT_EQ(Map(400, "", "", "eu-west-1").code(), EREMOTE);  // HEAD with a region header
}

TEST(ErrorsTest, Table) {
  EXPECT_EQ(Map(412, "PreconditionFailed").code(), ESTALE);
  EXPECT_EQ(Map(416, "InvalidRange").code(), EINVAL);
  EXPECT_EQ(Map(400, "EntityTooLarge").code(), EFBIG);
  EXPECT_EQ(Map(400, "EntityTooSmall").code(), EINVAL);
  EXPECT_EQ(Map(503, "SlowDown").code(), EAGAIN);
  EXPECT_EQ(Map(503, "").code(), EAGAIN);
  EXPECT_EQ(Map(500, "InternalError").code(), EIO);
  EXPECT_EQ(Map(502, "").code(), EIO);
  EXPECT_EQ(Map(501, "NotImplemented").code(), ENOTSUP);
  EXPECT_EQ(Map(405, "MethodNotAllowed").code(), ENOTSUP);
  EXPECT_EQ(Map(400, "KeyTooLongError").code(), ENAMETOOLONG);
  EXPECT_EQ(Map(409, "BucketNotEmpty").code(), EBUSY);
  EXPECT_EQ(Map(418, "Teapot").code(), EIO);
}

TEST(ErrorsTest, Transport) {
  Status s = MapTransportError(TransportFailure::kConnect, "Failed to connect to 127.0.0.1 port 9",
                               "http://127.0.0.1:9");
  EXPECT_EQ(s.code(), EHOSTUNREACH);
  EXPECT_TRUE(Has(s, "cannot reach endpoint URL http://127.0.0.1:9: Failed to connect"));
  EXPECT_EQ(MapTransportError(TransportFailure::kResolve, "x", "e").code(), EHOSTUNREACH);
  EXPECT_EQ(MapTransportError(TransportFailure::kTimeout, "x", "e").code(), ETIMEDOUT);
  s = MapTransportError(TransportFailure::kTls, "SSL certificate problem", "e");
  EXPECT_EQ(s.code(), EIO);
  EXPECT_TRUE(Has(s, "SSL certificate problem"));
  EXPECT_TRUE(Has(s, "trusted CA certificates: the system's store")) << s.message();
  s = MapTransportError(TransportFailure::kTls, "SSL certificate problem", "e", "/etc/ca.pem");
  EXPECT_TRUE(Has(s, "trusted CA certificates: /etc/ca.pem; AWS_CA_BUNDLE")) << s.message();
}

}  // namespace
}  // namespace s3cachefs::s3
