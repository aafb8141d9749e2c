// main() of integration_tests: starts the private s3rver, runs the tests, stops the server.
#include "test_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "s3/curl_client.h"

extern char** environ;

namespace s3cachefs::testing {

namespace {

const std::string kSourceDir = S3CACHEFS_SOURCE_DIR;

std::string g_root;      // mkdtemp dir: s3rver data under server/, scratch under scratch/
std::string g_endpoint;  // set once the server answers
std::string g_scratch;
std::atomic<int> g_bucket_seq{0};

// Stops the server and removes the temporary directory. Safe to call more than once.
void Cleanup() {
  static std::atomic<bool> done{false};
  if (g_root.empty() || done.exchange(true)) return;
  RunCommand({kSourceDir + "/scripts/s3rver.sh", "stop", g_root + "/server"});
  std::error_code ec;
  std::filesystem::remove_all(g_root, ec);
}

void OnSignal(int sig) {
  Cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

class S3rverEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/s3cachefs-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    g_root = tmpl;
    g_scratch = g_root + "/scratch";
    std::filesystem::create_directories(g_scratch);
    signal(SIGINT, OnSignal);
    signal(SIGTERM, OnSignal);
    CommandResult r = RunCommand({kSourceDir + "/scripts/s3rver.sh", "start", g_root + "/server"});
    ASSERT_EQ(r.exit_code, 0) << "cannot start s3rver: " << r.err;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("http://", 0) == 0) g_endpoint = line;
    }
    ASSERT_FALSE(g_endpoint.empty()) << "s3rver.sh printed no endpoint: " << r.out << r.err;
  }
  void TearDown() override { Cleanup(); }
};

}  // namespace

const std::string& S3rverEndpoint() {
  return g_endpoint;
}
const std::string& ScratchDir() {
  return g_scratch;
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env, const std::string& stdin_path) {
  CommandResult result;
  char out_tmpl[] = "/tmp/s3cachefs-it-outXXXXXX";
  char err_tmpl[] = "/tmp/s3cachefs-it-errXXXXXX";
  const int out_fd = mkstemp(out_tmpl);
  const int err_fd = mkstemp(err_tmpl);
  if (out_fd < 0 || err_fd < 0) {
    result.err = "mkstemp failed";
    return result;
  }
  unlink(out_tmpl);
  unlink(err_tmpl);

  // The environment is built before spawning: nothing is set in this process.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : extra_env) overridden |= x.substr(0, x.find('=')) == name;
    if (!overridden) env_strings.push_back(entry);
  }
  for (const std::string& x : extra_env) {
    if (x.find('=') != std::string::npos) env_strings.push_back(x);  // "NAME" alone unsets
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  argp.reserve(args.size() + 1);
  for (std::string& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(
      &actions, 0, stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    result.err = std::string("cannot run ") + argv[0] + ": " + strerror(rc);
  } else {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  auto slurp = [](int fd) {
    std::string s;
    char buf[65536];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
      s.append(buf, static_cast<size_t>(n));
      off += n;
    }
    close(fd);
    return s;
  };
  result.out = slurp(out_fd);
  result.err = slurp(err_fd);
  return result;
}

CommandResult RunAwsCli(const std::vector<std::string>& args, const std::string& stdin_path) {
  std::vector<std::string> argv = {kSourceDir + "/scripts/awscli.sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(
      argv,
      {"AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER", "AWS_REGION=us-east-1",
       "AWS_DEFAULT_REGION=us-east-1", "AWS_ENDPOINT_URL=" + g_endpoint, "AWS_PROFILE",
       "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3",
       // Keep the user's own AWS files out of the tests.
       "AWS_CONFIG_FILE=" + g_root + "/no-aws-config",
       "AWS_SHARED_CREDENTIALS_FILE=" + g_root + "/no-aws-credentials", "AWS_PAGER="},
      stdin_path);
}

std::string MakeBucket(const std::string& hint) {
  std::string name = hint + "-" + std::to_string(++g_bucket_seq);
  CommandResult r = RunAwsCli({"s3api", "create-bucket", "--bucket", name});
  EXPECT_EQ(r.exit_code, 0) << "create-bucket " << name << ": " << r.err;
  return name;
}

s3::ClientConfig TestConfig(const std::string& bucket) {
  s3::ClientConfig c;
  c.bucket = bucket;
  c.endpoint = g_endpoint;
  c.region = "us-east-1";
  c.credentials = {"S3RVER", "S3RVER", ""};
  c.max_connections = 8;
  // As ResolveConfig would from the environment (AWS_CA_BUNDLE is set in CI); it must not
  // break a plain http endpoint.
  if (const char* ca = std::getenv("AWS_CA_BUNDLE")) c.ca_bundle = ca;
  return c;
}

std::unique_ptr<s3::Client> MakeClient(const s3::ClientConfig& config) {
  Result<std::unique_ptr<s3::Client>> c = s3::CreateCurlClient(config);
  if (!c.ok()) {
    ADD_FAILURE() << "CreateCurlClient: " << c.status().ToString();
    return nullptr;
  }
  return std::move(*c);
}

std::unique_ptr<s3::Client> MakeClient(const std::string& bucket) {
  return MakeClient(TestConfig(bucket));
}

std::string WriteScratchFile(const std::string& name, const std::string& data) {
  std::string path = g_scratch + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream buf;
  buf << f.rdbuf();
  return buf.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line != "None") out.push_back(line);
  }
  return out;
}

// Deterministic, non-repeating-looking bytes.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

OpenFile::OpenFile(const std::string& path) : fd_(open(path.c_str(), O_RDONLY)) {}
OpenFile::~OpenFile() {
  if (fd_ >= 0) close(fd_);
}

std::string AwsEtag(const std::string& bucket, const std::string& key) {
  CommandResult r = RunAwsCli({"s3api", "head-object", "--bucket", bucket, "--key", key, "--query",
                               "ETag", "--output", "text"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string etag = r.out;
  while (!etag.empty() && (etag.back() == '\n' || etag.back() == '\r')) etag.pop_back();
  return etag;
}

void AwsPut(const std::string& bucket, const std::string& key, const std::string& file) {
  CommandResult r =
      RunAwsCli({"s3api", "put-object", "--bucket", bucket, "--key", key, "--body", file});
  ASSERT_EQ(r.exit_code, 0) << key << ": " << r.err;
}

std::string AwsGet(const std::string& bucket, const std::string& key,
                   const std::string& extra_range) {
  static int n = 0;
  const std::string out = ScratchDir() + "/aws-get-" + std::to_string(++n);
  std::vector<std::string> args = {"s3api", "get-object", "--bucket", bucket, "--key", key};
  if (!extra_range.empty()) {
    args.emplace_back("--range");
    args.push_back(extra_range);
  }
  args.push_back(out);
  CommandResult r = RunAwsCli(args);
  EXPECT_EQ(r.exit_code, 0) << key << ": " << r.err;
  std::string data = ReadFile(out);
  unlink(out.c_str());
  return data;
}

std::vector<std::string> AwsListKeys(const std::string& bucket, const std::string& prefix,
                                     const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "s3api", "list-objects-v2", "--bucket",         bucket,     "--prefix",
      prefix,  "--query",         "Contents[].[Key]", "--output", "text"};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = RunAwsCli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Lines(r.out);
}

}  // namespace s3cachefs::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new s3cachefs::testing::S3rverEnvironment);
  const int rc = RUN_ALL_TESTS();
  s3cachefs::testing::Cleanup();  // also when set-up failed half-way
  return rc;
}
