// The private s3rver every integration test talks to, and helpers around it.
//
// test_server.cc's main() starts one s3rver (scripts/s3rver.sh) in a fresh temporary directory
// before the tests and stops it afterwards, also when tests fail or the binary is interrupted.
// Tests check what the client did with an independent tool, the AWS CLI (RunAwsCli).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "s3/client.h"
#include "s3/config.h"

namespace s3cachefs::testing {

// http://127.0.0.1:PORT of the running s3rver.
const std::string& S3rverEndpoint();

// A directory for scratch files, removed when the run ends.
const std::string& ScratchDir();

// Creates a bucket named "<hint>-<n>" (unique in this run) and returns its name.
std::string MakeBucket(const std::string& hint);

// Client configuration for bucket on the test server (s3rver's credentials, path-style).
s3::ClientConfig TestConfig(const std::string& bucket);

// A CurlClient for bucket; aborts the test run if it cannot be made.
std::unique_ptr<s3::Client> MakeClient(const std::string& bucket);
std::unique_ptr<s3::Client> MakeClient(const s3::ClientConfig& config);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs scripts/awscli.sh args... against the test server. Credentials, region and endpoint are
// set in the child's environment only; stdin is stdin_path ("" = /dev/null).
CommandResult RunAwsCli(const std::vector<std::string>& args, const std::string& stdin_path = "");

// Runs argv (argv[0] looked up in PATH) with extra environment entries: "NAME=value" sets,
// "NAME" removes.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env = {},
                         const std::string& stdin_path = "");

// Writes data to a new file under ScratchDir() and returns its path.
std::string WriteScratchFile(const std::string& name, const std::string& data);
std::string ReadFile(const std::string& path);

// ---- AWS CLI checks and test data -----------------------------------------------------------

// Non-empty lines of text, "None" (awscli's null) dropped.
std::vector<std::string> Lines(const std::string& text);
// Deterministic pseudo-random bytes.
std::string Pattern(size_t n, uint32_t seed);
// awscli's view of an object's ETag (with quotes).
std::string AwsEtag(const std::string& bucket, const std::string& key);
// Uploads file as key with `aws s3api put-object` (a test failure if it fails).
void AwsPut(const std::string& bucket, const std::string& key, const std::string& file);
// Downloads key with `aws s3api get-object`, optionally a "bytes=a-b" range.
std::string AwsGet(const std::string& bucket, const std::string& key,
                   const std::string& range = "");
// Keys under prefix as `aws s3api list-objects-v2` sees them (all pages).
std::vector<std::string> AwsListKeys(const std::string& bucket, const std::string& prefix,
                                     const std::vector<std::string>& extra = {});

// An open read-only fd of a file, closed on scope exit.
class OpenFile {
 public:
  explicit OpenFile(const std::string& path);
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace s3cachefs::testing
