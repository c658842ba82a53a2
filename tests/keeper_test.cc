// The identity keeper's output for gRPC: each load is a complete generation
// behind one atomically swapped link, with modification times that change
// between generations (gRPC's file watcher reads the key and certificate
// separately and relies on those times to notice a swap mid-read; a
// half-old pair fails the handshake with "Invalid private key").

#include <dirent.h>
#include <sys/stat.h>

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "mesh/common/sync.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/identity/keeper.h"
#include "mesh/identity/svid.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace identity {
namespace {

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.insert(n);
  }
  closedir(d);
  return out;
}

TEST(KeeperTest, EachRotationIsOneCompleteGenerationSwappedAtOnce) {
  testing::TempDir tmp("mesh-keeper");
  const std::string in = tmp.path(), out = tmp.path() + "/out";
  auto ca = DevCa::Create("keeper test CA");
  ASSERT_TRUE(ca.ok());
  LeafOptions o;
  o.uris = {"spiffe://example.org/ns/default/sa/app"};
  auto first = (*ca)->Issue(o);
  ASSERT_TRUE(first.ok());
  WriteFile(in + "/cert.pem", first->cert);
  WriteFile(in + "/key.pem", first->key);
  WriteFile(in + "/ca.pem", (*ca)->cert_pem());
  ASSERT_EQ(mkdir(out.c_str(), 0700), 0);

  internal::Mutex mu;
  std::vector<std::string> serials;
  auto keeper = Keeper::Start(
      {in + "/cert.pem", in + "/key.pem", {in + "/ca.pem"}}, "example.org",
      out,
      [&](const SvidInfo& info) {
        internal::MutexLock lock(&mu);
        serials.push_back(info.serial_hex);
      },
      [](const std::string& error) { ADD_FAILURE() << error; });
  ASSERT_TRUE(keeper.ok()) << keeper.status();
  EXPECT_EQ(ReadFile(Keeper::CertPath(out)), first->cert);
  EXPECT_EQ(ReadFile(Keeper::KeyPath(out)), first->key);
  EXPECT_EQ(ReadFile(Keeper::BundlePath(out)), (*ca)->cert_pem());
  struct stat before;
  ASSERT_EQ(stat(Keeper::CertPath(out).c_str(), &before), 0);

  for (int round = 0; round < 3; ++round) {
    auto next = (*ca)->Issue(o);
    ASSERT_TRUE(next.ok());
    const std::string serial = PeerSvid(next->cert)->serial_hex;
    WriteFile(in + "/key.pem", next->key);
    WriteFile(in + "/cert.pem", next->cert);
    {
      internal::MutexLock lock(&mu);
      auto loaded = [&] { return !serials.empty() && serials.back() == serial; };
      ASSERT_TRUE(
          mu.AwaitWithTimeout(internal::Condition(&loaded), absl::Seconds(10)));
    }
    // The pair gRPC reads matches, and both files changed time.
    const std::string cert = ReadFile(Keeper::CertPath(out));
    const std::string key = ReadFile(Keeper::KeyPath(out));
    EXPECT_EQ(cert, next->cert);
    EXPECT_TRUE(CheckSvid(cert, key, (*ca)->cert_pem(), time(nullptr)).ok());
    struct stat after_cert, after_key;
    ASSERT_EQ(stat(Keeper::CertPath(out).c_str(), &after_cert), 0);
    ASSERT_EQ(stat(Keeper::KeyPath(out).c_str(), &after_key), 0);
    EXPECT_GT(after_cert.st_mtime, before.st_mtime);
    EXPECT_EQ(after_key.st_mtime, after_cert.st_mtime);
    before = after_cert;
    // The link, the generation in force and the one before it; no more.
    EXPECT_LE(Entries(out).size(), 3u) << ::testing::PrintToString(Entries(out));
  }
  keeper->reset();
  Keeper::RemoveFiles(out);
  struct stat gone;
  EXPECT_NE(stat(out.c_str(), &gone), 0) << "left: "
      << ::testing::PrintToString(Entries(out));
}

}  // namespace
}  // namespace identity
}  // namespace mesh
