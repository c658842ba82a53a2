// The bad-input corpus: every file in tests/testdata/bad/ is rejected with
// exactly the report in its .err file (nothing is partially applied: a
// rejected file yields no config at all), and hostile inputs generated here
// (too large, too deep, a symlink loop, a directory) fail cleanly.

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "mesh/config/config.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace config {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(BadConfigCorpusTest, EveryFileIsRejectedWithItsExactReport) {
  const std::string dir =
      std::string(getenv("TEST_SRCDIR")) + "/mesh/tests/testdata/bad";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  int files = 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 6 || name.substr(name.size() - 5) != ".yaml") continue;
    ++files;
    const std::string base = name.substr(0, name.size() - 5);
    std::string expected = Slurp(dir + "/" + base + ".err");
    if (!expected.empty() && expected.back() == '\n') expected.pop_back();
    auto cfg = ParseConfig(Slurp(dir + "/" + name), name);
    ASSERT_FALSE(cfg.ok()) << name << " was accepted";
    EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_EQ(std::string(cfg.status().message()), expected) << name;
  }
  closedir(d);
  EXPECT_GE(files, 50);
}

TEST(HostileInputTest, TooLargeTooDeepLoopsAndDirectoriesFailCleanly) {
  testing::TempDir tmp("mesh-bad");
  const std::string dir = tmp.path();
  // 17 MiB: over the limit, refused before parsing.
  {
    std::ofstream f(dir + "/huge.yaml");
    f << std::string(17 << 20, '#');
  }
  auto huge = LoadConfigFile(dir + "/huge.yaml");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().message(),
            dir + "/huge.yaml: file is larger than the limit of 16777216 "
                  "bytes");
  // Deep nesting: the YAML tree's depth limit, reported as a syntax error.
  for (const std::string& deep :
       {std::string(100000, '['), std::string(50000, '{') + "a: b",
        [] {
          std::string s;
          for (int i = 0; i < 3000; ++i) s += std::string(i, ' ') + "a:\n";
          return s;
        }()}) {
    auto cfg = ParseConfig(deep, "deep.yaml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  }
  // A symlink loop, and a directory where the file should be.
  ASSERT_EQ(symlink("loop.yaml", (dir + "/loop.yaml").c_str()), 0);
  auto loop = LoadConfigFile(dir + "/loop.yaml");
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().message(),
            dir + "/loop.yaml: Too many levels of symbolic links");
  ASSERT_EQ(mkdir((dir + "/d.yaml").c_str(), 0700), 0);
  auto directory = LoadConfigFile(dir + "/d.yaml");
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().message(), dir + "/d.yaml: not a regular file");
}

}  // namespace
}  // namespace config
}  // namespace mesh
