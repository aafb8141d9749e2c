// Whole-object transfers built on the Client primitives: upload a file region as one PUT or as
// a parallel multipart upload, and copy objects of any size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "s3/client.h"

namespace s3cachefs::s3 {

struct TransferTuning {
  uint64_t multipart_threshold = 16ull << 20;  // bodies at least this large go multipart
  uint64_t part_size = 16ull << 20;            // grown so that no upload needs > 10,000 parts
  int parallelism = 8;                         // parts in flight at once per transfer
};

// Uploads body as key: one PUT below the threshold, otherwise a multipart upload with parts sent
// in parallel; a failed multipart upload is aborted. Returns the ETag S3 answered with.
Result<std::string> UploadFile(Client& client, const std::string& key, const FileRegion& body,
                               const PutOptions& options, const TransferTuning& tuning = {});

// Copies source_key (size bytes) to dest_key: CopyObject up to 5 GiB, parallel UploadPartCopy
// above. options as in Client::CopyObject (nullopt = keep the source's metadata).
Result<std::string> CopyObjectAnySize(Client& client, const std::string& source_key,
                                      const std::string& dest_key, uint64_t size,
                                      const std::optional<PutOptions>& options,
                                      const TransferTuning& tuning = {});

// S3's multipart limits.
inline constexpr uint64_t kMinPartSize = 5ull << 20;
inline constexpr uint64_t kMaxPartSize = 5ull << 30;
inline constexpr int kMaxParts = 10000;
inline constexpr uint64_t kMaxSinglePut = 5ull << 30;

struct PartSpec {
  int number = 0;  // from 1
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Splits size bytes into parts of part_size (raised to kMinPartSize, and grown in whole MiB so
// that no more than kMaxParts are needed); the last part takes the remainder. Fails with EFBIG
// when even kMaxPartSize parts cannot hold size. Pure; size 0 gives one empty part.
Result<std::vector<PartSpec>> PlanParts(uint64_t size, uint64_t part_size);

}  // namespace s3cachefs::s3
