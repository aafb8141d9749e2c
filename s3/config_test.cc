#include "s3/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace s3cachefs::s3 {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/s3_config_testXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    env_["HOME"] = dir_;
    std::filesystem::create_directories(dir_ + "/.aws");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ + "/" + rel) << text;
  }
  EnvLookup Env() {
    return [this](const std::string& n) -> std::optional<std::string> {
      auto it = env_.find(n);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }
  Result<ClientConfig> Resolve(const ConfigOverrides& o = {}) {
    return ResolveConfig("bkt", o, Env());
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(ConfigTest, DefaultsWithNothingSet) {
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->bucket, "bkt");
  EXPECT_EQ(c->region, "us-east-1");
  EXPECT_EQ(c->endpoint, "https://s3.us-east-1.amazonaws.com");
  EXPECT_TRUE(c->credentials.anonymous());
  EXPECT_EQ(c->addressing, AddressingStyle::kAuto);
  EXPECT_EQ(c->ca_bundle, "");
}

TEST_F(ConfigTest, DefaultProfileFromFiles) {
  Write(".aws/config", "[default]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n");
  Write(".aws/credentials", "[default]\naws_access_key_id = AKID\naws_secret_access_key = SK\n");
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->region, "eu-west-1");
  EXPECT_EQ(c->endpoint, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(c->addressing, AddressingStyle::kPath);
  EXPECT_EQ(c->credentials.access_key_id, "AKID");
  EXPECT_EQ(c->credentials.secret_access_key, "SK");
}

TEST_F(ConfigTest, NamedProfileAndFileLocationsFromEnv) {
  Write("conf",
        "[profile dev]\nregion = ap-south-1\nendpoint_url = http://10.0.0.1:9000\n"
        "ca_bundle = ~/ca.pem\ns3 =\n  addressing_style = virtual\n");
  Write("creds",
        "[dev]\naws_access_key_id = DEVID\naws_secret_access_key = DEVSK\n"
        "aws_session_token = TOK\n");
  env_["AWS_CONFIG_FILE"] = dir_ + "/conf";
  env_["AWS_SHARED_CREDENTIALS_FILE"] = dir_ + "/creds";
  env_["AWS_PROFILE"] = "dev";
  env_["AWS_DEFAULT_PROFILE"] = "other";
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->region, "ap-south-1");
  EXPECT_EQ(c->endpoint, "http://10.0.0.1:9000");
  EXPECT_EQ(c->ca_bundle, dir_ + "/ca.pem");
  EXPECT_EQ(c->addressing, AddressingStyle::kVirtual);
  EXPECT_EQ(c->credentials.access_key_id, "DEVID");
  EXPECT_EQ(c->credentials.session_token, "TOK");
}

TEST_F(ConfigTest, DefaultProfileEnvVariable) {
  Write(".aws/credentials", "[other]\naws_access_key_id = O\naws_secret_access_key = OS\n");
  env_["AWS_DEFAULT_PROFILE"] = "other";
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->credentials.access_key_id, "O");
}

TEST_F(ConfigTest, EnvironmentBeatsFiles) {
  Write(".aws/config",
        "[default]\nregion = eu-west-1\nendpoint_url = http://file:1\n"
        "ca_bundle = /file.pem\n");
  Write(".aws/credentials", "[default]\naws_access_key_id = FILE\naws_secret_access_key = F\n");
  env_["AWS_REGION"] = "us-west-1";
  env_["AWS_DEFAULT_REGION"] = "us-west-2";
  env_["AWS_ENDPOINT_URL"] = "http://generic:2";
  env_["AWS_ENDPOINT_URL_S3"] = "http://s3specific:3";
  env_["AWS_CA_BUNDLE"] = "/env.pem";
  env_["AWS_ACCESS_KEY_ID"] = "ENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "ENVSK";
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->region, "us-west-1");
  EXPECT_EQ(c->endpoint, "http://s3specific:3");
  EXPECT_EQ(c->ca_bundle, "/env.pem");
  EXPECT_EQ(c->credentials.access_key_id, "ENV");
  env_.erase("AWS_ENDPOINT_URL_S3");
  env_.erase("AWS_REGION");
  c = Resolve();
  EXPECT_EQ(c->endpoint, "http://generic:2");
  EXPECT_EQ(c->region, "us-west-2");
}

TEST_F(ConfigTest, OverridesBeatEverything) {
  env_["AWS_REGION"] = "us-west-1";
  env_["AWS_ENDPOINT_URL"] = "http://env:1";
  env_["AWS_CA_BUNDLE"] = "/env.pem";
  ConfigOverrides o;
  o.region = "eu-central-1";
  o.endpoint = "http://127.0.0.1:9";
  o.addressing = AddressingStyle::kPath;
  o.ca_bundle = "/opt.pem";
  Result<ClientConfig> c = Resolve(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->region, "eu-central-1");
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:9");
  EXPECT_EQ(c->addressing, AddressingStyle::kPath);
  EXPECT_EQ(c->ca_bundle, "/opt.pem");
}

TEST_F(ConfigTest, ExplicitProfileIgnoresEnvCredentials) {
  Write(".aws/credentials", "[p]\naws_access_key_id = PID\naws_secret_access_key = PSK\n");
  env_["AWS_ACCESS_KEY_ID"] = "ENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "ENVSK";
  ConfigOverrides o;
  o.profile = "p";
  Result<ClientConfig> c = Resolve(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->credentials.access_key_id, "PID");
}

TEST_F(ConfigTest, CredentialsInConfigFile) {
  Write(".aws/config", "[profile q]\naws_access_key_id = QID\naws_secret_access_key = QSK\n");
  ConfigOverrides o;
  o.profile = "q";
  Result<ClientConfig> c = Resolve(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->credentials.access_key_id, "QID");
}

TEST_F(ConfigTest, AnonymousSkipsCredentials) {
  env_["AWS_ACCESS_KEY_ID"] = "ENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "ENVSK";
  ConfigOverrides o;
  o.anonymous = true;
  Result<ClientConfig> c = Resolve(o);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->credentials.anonymous());
}

TEST_F(ConfigTest, Errors) {
  ConfigOverrides o;
  o.profile = "missing";
  Result<ClientConfig> c = Resolve(o);
  EXPECT_EQ(c.status().code(), EINVAL);
  EXPECT_NE(c.status().message().find("\"missing\""), std::string::npos);

  env_["AWS_PROFILE"] = "missing-too";
  EXPECT_EQ(Resolve().status().code(), EINVAL);
  env_.erase("AWS_PROFILE");

  env_["AWS_ACCESS_KEY_ID"] = "ONLYID";
  c = Resolve();
  EXPECT_EQ(c.status().code(), EINVAL);
  EXPECT_NE(c.status().message().find("only one"), std::string::npos);
  env_.erase("AWS_ACCESS_KEY_ID");

  Write(".aws/config", "[default]\ns3 =\n  addressing_style = sideways\n");
  EXPECT_EQ(Resolve().status().code(), EINVAL);
  Write(".aws/config", "garbage\n");
  EXPECT_EQ(Resolve().status().code(), EINVAL);
  EXPECT_EQ(ResolveConfig("", {}, Env()).status().code(), EINVAL);
}

TEST_F(ConfigTest, RedactedHidesSecrets) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIAIOSFODNN7EXAMPLE";
  env_["AWS_SECRET_ACCESS_KEY"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  env_["AWS_SESSION_TOKEN"] = "SESSIONTOKENVALUE";
  Result<ClientConfig> c = Resolve();
  ASSERT_TRUE(c.ok());
  const std::string r = c->Redacted();
  EXPECT_EQ(r.find("wJalrXUtnFEMI"), std::string::npos) << r;
  EXPECT_EQ(r.find("SESSIONTOKENVALUE"), std::string::npos) << r;
  EXPECT_EQ(r.find("AKIAIOSFODNN7EXAMPLE"), std::string::npos) << r;
  EXPECT_NE(r.find("bucket=bkt"), std::string::npos) << r;
}

}  // namespace
}  // namespace s3cachefs::s3
