#include "s3/config.h"

#include <cstdlib>

#include "s3/ini.h"

namespace s3cachefs::s3 {

namespace {

std::optional<std::string> NonEmpty(const EnvLookup& env, const std::string& name) {
  std::optional<std::string> v = env(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

std::string ExpandHome(const std::string& path, const EnvLookup& env) {
  if (path.empty() || path[0] != '~') return path;
  const std::optional<std::string> home = env("HOME");
  return (home ? *home : std::string()) + path.substr(1);
}

const std::map<std::string, std::string>* FindSection(const IniFile& ini, const std::string& name) {
  auto it = ini.find(name);
  return it == ini.end() ? nullptr : &it->second;
}

std::optional<std::string> Get(const std::map<std::string, std::string>* section,
                               const std::string& key) {
  if (section == nullptr) return std::nullopt;
  auto it = section->find(key);
  if (it == section->end() || it->second.empty()) return std::nullopt;
  return it->second;
}

const char* StyleName(AddressingStyle style) {
  switch (style) {
    case AddressingStyle::kPath:
      return "path";
    case AddressingStyle::kVirtual:
      return "virtual";
    case AddressingStyle::kAuto:
      break;
  }
  return "auto";
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string ClientConfig::Redacted() const {
  std::string creds = "anonymous";
  if (!credentials.anonymous()) {
    // Access key ids are not secret, but the tail is enough to tell keys apart in logs.
    const std::string& id = credentials.access_key_id;
    creds = "key id ..." + (id.size() > 4 ? id.substr(id.size() - 4) : id) + ", secret set";
    if (!credentials.session_token.empty()) creds += ", session token set";
  }
  return "bucket=" + bucket + " endpoint=" + endpoint + " region=" + region +
         " addressing=" + StyleName(addressing) + " credentials=(" + creds + ")" +
         " ca_bundle=" + (ca_bundle.empty() ? "(system)" : ca_bundle) +
         " verify_tls=" + (verify_tls ? "yes" : "no") +
         " max_connections=" + std::to_string(max_connections) +
         " max_attempts=" + std::to_string(retry.max_attempts);
}

// Precedence, as in the AWS CLI: option > environment > config/credentials file > default.
// The profile is the option, else AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default". As in
// botocore, a profile chosen by option makes the AWS_ACCESS_KEY_ID/SECRET pair be ignored.
Result<ClientConfig> ResolveConfig(const std::string& bucket, const ConfigOverrides& overrides,
                                   const EnvLookup& env) {
  if (bucket.empty()) return Status::Error(EINVAL, "no bucket name given");
  ClientConfig config;
  config.bucket = bucket;

  std::optional<std::string> profile = overrides.profile;
  if (!profile) profile = NonEmpty(env, "AWS_PROFILE");
  if (!profile) profile = NonEmpty(env, "AWS_DEFAULT_PROFILE");
  const bool named_profile = profile.has_value();
  const std::string profile_name = profile.value_or("default");

  const std::string config_path =
      ExpandHome(NonEmpty(env, "AWS_CONFIG_FILE").value_or("~/.aws/config"), env);
  const std::string creds_path =
      ExpandHome(NonEmpty(env, "AWS_SHARED_CREDENTIALS_FILE").value_or("~/.aws/credentials"), env);
  Result<IniFile> config_file = ReadIniFile(config_path);
  if (!config_file.ok()) return config_file.status();
  Result<IniFile> creds_file = ReadIniFile(creds_path);
  if (!creds_file.ok()) return creds_file.status();

  const auto* conf = FindSection(*config_file, "profile " + profile_name);
  if (conf == nullptr && profile_name == "default") conf = FindSection(*config_file, "default");
  const auto* cred = FindSection(*creds_file, profile_name);
  if (named_profile && conf == nullptr && cred == nullptr) {
    return Status::Error(EINVAL, "the profile \"" + profile_name + "\" is not in " + config_path +
                                     " or " + creds_path);
  }

  // Region first: the default endpoint depends on it.
  std::optional<std::string> region = overrides.region;
  if (!region) region = NonEmpty(env, "AWS_REGION");
  if (!region) region = NonEmpty(env, "AWS_DEFAULT_REGION");
  if (!region) region = Get(conf, "region");
  if (region) config.region = *region;

  std::optional<std::string> endpoint = overrides.endpoint;
  if (!endpoint) endpoint = NonEmpty(env, "AWS_ENDPOINT_URL_S3");
  if (!endpoint) endpoint = NonEmpty(env, "AWS_ENDPOINT_URL");
  if (!endpoint) endpoint = Get(conf, "s3.endpoint_url");
  if (!endpoint) endpoint = Get(conf, "endpoint_url");
  config.endpoint = endpoint.value_or("https://s3." + config.region + ".amazonaws.com");

  std::optional<std::string> ca = overrides.ca_bundle;
  if (!ca) ca = NonEmpty(env, "AWS_CA_BUNDLE");
  if (!ca) ca = Get(conf, "ca_bundle");
  if (ca) config.ca_bundle = ExpandHome(*ca, env);

  if (overrides.addressing) {
    config.addressing = *overrides.addressing;
  } else if (std::optional<std::string> style = Get(conf, "s3.addressing_style")) {
    if (*style == "path") {
      config.addressing = AddressingStyle::kPath;
    } else if (*style == "virtual") {
      config.addressing = AddressingStyle::kVirtual;
    } else if (*style != "auto") {
      return Status::Error(EINVAL, config_path +
                                       ": addressing_style must be auto, path or "
                                       "virtual, not \"" +
                                       *style + "\"");
    }
  }

  if (overrides.anonymous) return config;

  auto take = [&config](
                  const std::optional<std::string>& id, const std::optional<std::string>& secret,
                  const std::optional<std::string>& token, const std::string& where) -> Status {
    if (id.has_value() != secret.has_value()) {
      return Status::Error(EINVAL, where +
                                       " sets only one of the access key id and the secret "
                                       "access key");
    }
    config.credentials.access_key_id = id.value_or("");
    config.credentials.secret_access_key = secret.value_or("");
    config.credentials.session_token = token.value_or("");
    return Status::Ok();
  };
  Status s;
  if (!overrides.profile &&
      (NonEmpty(env, "AWS_ACCESS_KEY_ID") || NonEmpty(env, "AWS_SECRET_ACCESS_KEY"))) {
    s = take(NonEmpty(env, "AWS_ACCESS_KEY_ID"), NonEmpty(env, "AWS_SECRET_ACCESS_KEY"),
             NonEmpty(env, "AWS_SESSION_TOKEN"), "the environment");
  } else if (Get(cred, "aws_access_key_id") || Get(cred, "aws_secret_access_key")) {
    s = take(Get(cred, "aws_access_key_id"), Get(cred, "aws_secret_access_key"),
             Get(cred, "aws_session_token"), creds_path + " [" + profile_name + "]");
  } else if (Get(conf, "aws_access_key_id") || Get(conf, "aws_secret_access_key")) {
    s = take(Get(conf, "aws_access_key_id"), Get(conf, "aws_secret_access_key"),
             Get(conf, "aws_session_token"), config_path + " [profile " + profile_name + "]");
  }
  if (!s.ok()) return s;
  return config;
}

}  // namespace s3cachefs::s3
