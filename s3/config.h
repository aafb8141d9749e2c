// Client configuration and its resolution from options, environment and ~/.aws files.
//
// Resolution follows the AWS CLI: an explicit option wins, then the environment
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION, AWS_CA_BUNDLE,
// AWS_PROFILE / AWS_DEFAULT_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), then the profile's settings in the config file
// ("[profile NAME]" sections; region, endpoint_url, ca_bundle, s3 = addressing_style) and the
// credentials file ("[NAME]" sections). Secrets are never logged: see Redacted().
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "s3/status.h"

namespace s3cachefs::s3 {

enum class AddressingStyle { kAuto, kPath, kVirtual };

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  // Anonymous requests are sent unsigned (public buckets).
  bool anonymous() const { return access_key_id.empty(); }
};

struct RetryPolicy {
  int max_attempts = 5;  // total attempts, first included
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

struct ClientConfig {
  std::string bucket;
  std::string endpoint;  // scheme://host[:port]; default https://s3.<region>.amazonaws.com
  std::string region = "us-east-1";
  AddressingStyle addressing = AddressingStyle::kAuto;  // auto: path-style for IPs/localhost
  Credentials credentials;
  std::string ca_bundle;  // PEM file; "" = system default
  bool verify_tls = true;
  long connect_timeout_ms = 10000;
  long low_speed_limit = 1;  // bytes/s; below it for low_speed_time_s aborts the transfer
  long low_speed_time_s = 30;
  int max_connections = 32;  // size of the connection pool
  RetryPolicy retry;
  std::string user_agent = "s3cachefs/0.1";

  // A one-line description without secrets, for logs.
  std::string Redacted() const;
};

struct ConfigOverrides {
  std::optional<std::string> endpoint;
  std::optional<std::string> region;
  std::optional<std::string> profile;
  std::optional<AddressingStyle> addressing;
  std::optional<std::string> ca_bundle;
  bool anonymous = false;  // do not look up credentials; send unsigned requests
};

// Looks up an environment variable; tests pass a fake.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Builds the configuration for bucket. Fails with a clear message when a named profile does not
// exist, a file cannot be parsed, or only one of the key id / secret is set. Missing credentials
// are not an error: the client is then anonymous.
Result<ClientConfig> ResolveConfig(const std::string& bucket, const ConfigOverrides& overrides,
                                   const EnvLookup& env);

}  // namespace s3cachefs::s3
