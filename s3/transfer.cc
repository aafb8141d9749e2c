#include "s3/transfer.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "s3/log.h"

namespace s3cachefs::s3 {

namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Runs do_part for every part on up to parallelism threads. After the first failure no new part
// is started; the first error is returned. Results are in part order.
Result<std::vector<CompletedPart>> RunParts(
    const std::vector<PartSpec>& parts, int parallelism,
    const std::function<Result<std::string>(const PartSpec&)>& do_part) {
  std::vector<CompletedPart> done(parts.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;  // guarded by mu
  auto worker = [&] {
    for (;;) {
      if (failed.load()) return;
      const size_t i = next.fetch_add(1);
      if (i >= parts.size()) return;
      Result<std::string> etag = do_part(parts[i]);
      if (etag.ok() && etag->empty()) {
        etag = Status::Error(
            EIO, "part " + std::to_string(parts[i].number) + " was accepted without an ETag");
      }
      if (!etag.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = etag.status();
        failed.store(true);
        return;
      }
      done[i] = {parts[i].number, *etag};
    }
  };
  const size_t threads =
      std::clamp<size_t>(static_cast<size_t>(std::max(parallelism, 1)), 1, parts.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();  // the calling thread works too
  for (std::thread& t : pool) t.join();
  if (failed.load()) return first_error;
  return done;
}

// Create -> parts -> Complete, aborting the upload when anything fails.
Result<std::string> Multipart(Client& client, const std::string& key, const PutOptions& options,
                              const std::vector<PartSpec>& parts, int parallelism,
                              const std::function<Result<std::string>(const std::string& upload_id,
                                                                      const PartSpec&)>& do_part) {
  Result<std::string> upload_id = client.CreateMultipartUpload(key, options);
  if (!upload_id.ok()) return upload_id.status();
  Result<std::vector<CompletedPart>> done =
      RunParts(parts, parallelism, [&](const PartSpec& p) { return do_part(*upload_id, p); });
  Result<std::string> etag = done.ok() ? client.CompleteMultipartUpload(key, *upload_id, *done)
                                       : Result<std::string>(done.status());
  if (!etag.ok()) {
    // Parts of an unfinished upload are billed until aborted.
    Status abort = client.AbortMultipartUpload(key, *upload_id);
    if (!abort.ok()) {
      LOG_WARN("cannot abort multipart upload of %s: %s", key.c_str(), abort.ToString().c_str());
    }
  }
  return etag;
}

}  // namespace

Result<std::vector<PartSpec>> PlanParts(uint64_t size, uint64_t part_size) {
  part_size = std::clamp(part_size, kMinPartSize, kMaxPartSize);
  if ((size + part_size - 1) / part_size > static_cast<uint64_t>(kMaxParts)) {
    const uint64_t needed = (size + kMaxParts - 1) / kMaxParts;
    part_size = (needed + kMiB - 1) / kMiB * kMiB;
    if (part_size > kMaxPartSize) {
      return Status::Error(
          EFBIG, "object of " + std::to_string(size) + " bytes exceeds S3's multipart limits");
    }
  }
  std::vector<PartSpec> parts;
  uint64_t offset = 0;
  do {
    const uint64_t len = std::min(part_size, size - offset);
    parts.push_back({static_cast<int>(parts.size()) + 1, offset, len});
    offset += len;
  } while (offset < size);
  return parts;
}

Result<std::string> UploadFile(Client& client, const std::string& key, const FileRegion& body,
                               const PutOptions& options, const TransferTuning& tuning) {
  if (body.length < tuning.multipart_threshold && body.length <= kMaxSinglePut) {
    return client.PutObject(key, body, options);
  }
  Result<std::vector<PartSpec>> parts = PlanParts(body.length, tuning.part_size);
  if (!parts.ok()) return parts.status().WithContext("uploading " + key);
  return Multipart(client, key, options, *parts, tuning.parallelism,
                   [&](const std::string& upload_id, const PartSpec& p) {
                     const FileRegion region{body.fd, body.offset + p.offset, p.length};
                     return client.UploadPart(key, upload_id, p.number, region);
                   });
}

Result<std::string> CopyObjectAnySize(Client& client, const std::string& source_key,
                                      const std::string& dest_key, uint64_t size,
                                      const std::optional<PutOptions>& options,
                                      const TransferTuning& tuning) {
  if (size <= kMaxSinglePut) return client.CopyObject(source_key, dest_key, options);
  // A multipart copy does not carry the source's metadata over by itself.
  PutOptions opts;
  if (options) {
    opts = *options;
  } else {
    Result<ObjectInfo> src = client.HeadObject(source_key);
    if (!src.ok()) return src.status();
    opts.metadata = src->metadata;
    opts.content_type = src->content_type;
  }
  Result<std::vector<PartSpec>> parts = PlanParts(size, std::max(tuning.part_size, 512 * kMiB));
  if (!parts.ok()) return parts.status().WithContext("copying " + source_key);
  return Multipart(client, dest_key, opts, *parts, tuning.parallelism,
                   [&](const std::string& upload_id, const PartSpec& p) {
                     return client.UploadPartCopy(dest_key, upload_id, p.number, source_key,
                                                  {p.offset, p.offset + p.length - 1});
                   });
}

}  // namespace s3cachefs::s3
