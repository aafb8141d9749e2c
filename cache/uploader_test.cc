// The background write-back queue (cache/uploader.h): every queued entry runs, no more at once
// than there are workers, and an entry due later runs when it is due while another runs.
#include "cache/uploader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "cache/cache_test_util.h"

namespace s3cachefs::cache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(UploaderTest, EveryEntryRunsOnAtMostAsManyWorkersAsThereAre) {
  testutil::Overlap runs;
  std::atomic<int> ran{0};
  Uploader uploader(4, [&](const std::shared_ptr<WriteEntry>&) {
    runs.Hold(5ms);
    ++ran;
    return std::optional<std::chrono::milliseconds>();
  });
  uploader.Start();
  std::vector<std::shared_ptr<WriteEntry>> entries;
  entries.reserve(40);
  for (int i = 0; i < 40; ++i) {
    entries.push_back(std::make_shared<WriteEntry>());
    uploader.Enqueue(entries.back(), 0ms);
  }
  ASSERT_TRUE(testutil::WaitFor([&] { return ran.load() == 40 && uploader.pending() == 0; }));
  EXPECT_EQ(runs.most(), 4);
}

// One worker sleeps until `later` is due. `now` arrives and wakes one worker, which runs it for
// a long time: `later` must still run when it is due, on the other worker, whichever of the two
// the wake-up reached (with glibc the longest sleeper, the one without a deadline; Run hands
// the wake-up on either way).
TEST(UploaderTest, AnEntryDueLaterRunsOnTimeWhileTheWorkersTakeOthers) {
  for (int round = 0; round < 5; ++round) {
    auto later = std::make_shared<WriteEntry>();
    auto now = std::make_shared<WriteEntry>();
    std::atomic<bool> release{false};
    std::atomic<int64_t> later_ran_ms{-1};
    const Clock::time_point start = Clock::now();
    Uploader uploader(2, [&](const std::shared_ptr<WriteEntry>& e) {
      if (e == later) {
        later_ran_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
      } else {
        while (!release.load()) std::this_thread::sleep_for(1ms);
      }
      return std::optional<std::chrono::milliseconds>();
    });
    uploader.Start();
    uploader.Enqueue(later, 150ms);
    std::this_thread::sleep_for(30ms);  // a worker now waits until later is due
    uploader.Enqueue(now, 0ms);
    const bool ran = testutil::WaitFor([&] { return later_ran_ms.load() >= 0; }, 2s);
    release = true;  // before any assertion returns: Shutdown waits for the run of `now`
    uploader.Shutdown();
    ASSERT_TRUE(ran) << "round " << round
                     << ": the entry due at 150 ms did not run while another ran";
    EXPECT_LT(later_ran_ms.load(), 1000) << "round " << round;
  }
}

}  // namespace
}  // namespace s3cachefs::cache
