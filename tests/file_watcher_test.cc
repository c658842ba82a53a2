// The file watcher sees every way a config file is replaced in practice.

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <fstream>

#include <gtest/gtest.h>

#include "mesh/common/sync.h"
#include "mesh/source/file_watcher.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace source {
namespace {

class FileWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.path();
    path_ = dir_ + "/mesh.yaml";
  }
  void TearDown() override { watcher_.reset(); }

  void Watch(const std::string& initial) {
    auto w = FileWatcher::Start(path_, initial,
                                [this](absl::StatusOr<std::string> s) {
                                  internal::MutexLock l(&mu_);
                                  events_.push_back(
                                      s.ok() ? *s : "ERROR " +
                                                        s.status().ToString());
                                });
    ASSERT_TRUE(w.ok()) << w.status();
    watcher_ = *std::move(w);
  }

  // The next reported event, waiting at most 10 s.
  std::string Next() {
    internal::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(internal::Condition(
                             +[](std::deque<std::string>* q) {
                               return !q->empty();
                             },
                             &events_),
                         absl::Seconds(10));
    if (events_.empty()) return "TIMEOUT";
    std::string e = events_.front();
    events_.pop_front();
    return e;
  }

  static void WriteFile(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::trunc);
    f << data;
  }
  void ReplaceAtomically(const std::string& data) {
    WriteFile(path_ + ".tmp", data);
    ASSERT_EQ(rename((path_ + ".tmp").c_str(), path_.c_str()), 0);
  }

  testing::TempDir tmp_{"mesh-fw-test"};
  std::string dir_, path_;
  internal::Mutex mu_;
  std::deque<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<FileWatcher> watcher_;
};

TEST_F(FileWatcherTest, SeesAtomicRename) {
  WriteFile(path_, "v1");
  Watch("v1");
  ReplaceAtomically("v2");
  EXPECT_EQ(Next(), "v2");
  ReplaceAtomically("v3");
  EXPECT_EQ(Next(), "v3");
}

TEST_F(FileWatcherTest, SeesInPlaceWriteOnceComplete) {
  WriteFile(path_, "v1");
  Watch("v1");
  WriteFile(path_, "v2 longer content");
  EXPECT_EQ(Next(), "v2 longer content");
}

TEST_F(FileWatcherTest, DoesNotReportUnchangedContent) {
  WriteFile(path_, "v1");
  Watch("v1");
  ReplaceAtomically("v1");  // Same bytes: not reported...
  ReplaceAtomically("v2");  // ...so the next event is this one.
  EXPECT_EQ(Next(), "v2");
}

TEST_F(FileWatcherTest, SeesKubernetesConfigMapSymlinkSwap) {
  // The kubelet's layout: mesh.yaml -> ..data/mesh.yaml, ..data -> ..v1;
  // an update writes ..v2 and renames a new ..data symlink over the old one.
  ASSERT_EQ(mkdir((dir_ + "/..v1").c_str(), 0755), 0);
  WriteFile(dir_ + "/..v1/mesh.yaml", "v1");
  ASSERT_EQ(symlink("..v1", (dir_ + "/..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/mesh.yaml", path_.c_str()), 0);
  Watch("v1");
  ASSERT_EQ(mkdir((dir_ + "/..v2").c_str(), 0755), 0);
  WriteFile(dir_ + "/..v2/mesh.yaml", "v2");
  ASSERT_EQ(symlink("..v2", (dir_ + "/..data_tmp").c_str()), 0);
  ASSERT_EQ(rename((dir_ + "/..data_tmp").c_str(), (dir_ + "/..data").c_str()),
            0);
  EXPECT_EQ(Next(), "v2");
}

TEST_F(FileWatcherTest, ReportsADeletedFileThenItsReturn) {
  WriteFile(path_, "v1");
  Watch("v1");
  ASSERT_EQ(unlink(path_.c_str()), 0);
  const std::string e = Next();
  EXPECT_EQ(e, "ERROR NOT_FOUND: " + path_ + ": No such file or directory");
  ReplaceAtomically("v2");
  EXPECT_EQ(Next(), "v2");
}

// 1000 rapid atomic rewrites: every report is one of the versions written,
// whole (never half a file), in order, and the last one is the last written.
TEST_F(FileWatcherTest, RapidRewritesEndWithTheLastVersionNoneHalfRead) {
  // Versions of different lengths, each ending in its own number: a torn
  // read would show as a text that is not one of them.
  auto version = [](int i) {
    return std::string(100 + (i * 37) % 900, 'a' + i % 26) + "#" +
           std::to_string(i) + "\n";
  };
  WriteFile(path_, version(0));
  Watch(version(0));
  constexpr int kRewrites = 1000;
  for (int i = 1; i <= kRewrites; ++i) ReplaceAtomically(version(i));
  int last = 0;
  while (last != kRewrites) {
    const std::string e = Next();
    ASSERT_NE(e, "TIMEOUT") << "last seen: version " << last;
    const size_t hash = e.rfind('#');
    ASSERT_NE(hash, std::string::npos) << e.substr(0, 80);
    const int i = std::stoi(e.substr(hash + 1));
    ASSERT_EQ(e, version(i)) << "a torn read of version " << i;
    ASSERT_GT(i, last) << "reported out of order";
    last = i;
  }
  // Nothing after the last version.
  internal::MutexLock l(&mu_);
  EXPECT_TRUE(events_.empty());
}

TEST(FileWatcherStartTest, FailsClearlyForAMissingDirectory) {
  auto w = FileWatcher::Start("/nonexistent-dir/mesh.yaml", "",
                              [](absl::StatusOr<std::string>) {});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().message(),
            "cannot watch directory /nonexistent-dir: No such file or "
            "directory");
}

}  // namespace
}  // namespace source
}  // namespace mesh
