// Helpers for the config source tests: a config document, endpoint sets,
// puts that retry while etcd moves its leader, the version what etcd holds
// composes to, and a recorder of what a Sources reports.

#ifndef TESTS_SOURCE_TESTLIB_H_
#define TESTS_SOURCE_TESTLIB_H_

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "mesh/common/sync.h"
#include "mesh/source/compose.h"
#include "mesh/source/etcd_client.h"
#include "mesh/source/etcd_source.h"
#include "mesh/source/sources.h"

namespace mesh {
namespace testing {

using source::EtcdClient;

inline constexpr char kDoc[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
)";

// An endpoint set of greeter with one endpoint.
inline std::string Set(int port, const std::string& locality = "r1/z1/c1") {
  std::vector<std::string> p = absl::StrSplit(locality, '/');
  return absl::StrCat(
      "apiVersion: mesh/v1\nkind: EndpointSet\nservice: greeter\n"
      "endpoints:\n  - {address: 127.0.0.1, port: ",
      port, ", locality: {region: ", p[0], ", zone: ", p[1], ", cluster: ",
      p[2], "}}\n");
}

// A registered instance of greeter (kind: Instance, as a registrar writes
// it) at 127.0.0.1:`port`.
inline std::string Instance(int port, const std::string& locality = "r1/z1/c1") {
  std::vector<std::string> p = absl::StrSplit(locality, '/');
  return absl::StrCat(
      "apiVersion: mesh/v1\nkind: Instance\nservice: default/greeter\n"
      "identity: spiffe://example.org/ns/default/sa/greeter\n"
      "started: \"2026-12-07T00:00:00Z\"\n"
      "endpoints:\n  - {address: 127.0.0.1, port: ",
      port, ", locality: {region: ", p[0], ", zone: ", p[1], ", cluster: ",
      p[2], "}}\n");
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
}

inline std::unique_ptr<EtcdClient> Client(const std::vector<std::string>& endpoints) {
  auto c = EtcdClient::Create({endpoints});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Puts until it succeeds (a member may be gone; the leader may be moving).
inline void MustPut(EtcdClient& c, const std::string& key, const std::string& value) {
  absl::Status st;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  do {
    st = c.Put(key, value).status();
  } while (!st.ok() && absl::Now() < end);
  ASSERT_TRUE(st.ok()) << key << ": " << st;
}

// The version the parts stored under /mesh/ compose to: what a source that
// has seen every put must end at.
inline std::string ExpectedVersion(EtcdClient& c, const std::string& file = "",
                            const std::string& file_text = "") {
  absl::StatusOr<EtcdClient::Listing> l;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  do {
    l = c.List("/mesh/");
  } while (!l.ok() && absl::Now() < end);
  EXPECT_TRUE(l.ok()) << l.status();
  if (!l.ok()) return "";
  source::Composer comp;
  if (!file.empty()) comp.SetDocument(file, file_text);
  source::EtcdSource::Change ch;
  ch.full = true;
  for (auto& kv : l->kvs) ch.events.push_back({false, kv});
  bool changed = false;
  source::EtcdSource::Apply("/mesh/", ch, &comp, &changed);
  auto r = comp.Compose();
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->snapshot->version : "";
}

// Sources over etcd alone, recording the versions it reports.
class Recorder {
 public:
  source::Sources::Callbacks Callbacks() {
    source::Sources::Callbacks cb;
    cb.on_config = [this](const source::Composer::Result& r, bool stale) {
      internal::MutexLock lock(&mu_);
      version_ = r.snapshot->version;
      stale_ = stale;
    };
    cb.on_status = [this](const source::SourceStatus& s) {
      internal::MutexLock lock(&mu_);
      if (!s.ok) {
        error_text_ += s.last_error + "\n";
      }
    };
    return cb;
  }
  // Until the reported config is `want` and fresh (not stale).
  bool AwaitFresh(const std::string& want, absl::Duration timeout) {
    internal::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return version_ == want && !stale_;
    };
    return mu_.AwaitWithTimeout(internal::Condition(&done), timeout);
  }
  bool AwaitVersion(const std::string& want, absl::Duration timeout) {
    internal::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return version_ == want;
    };
    return mu_.AwaitWithTimeout(internal::Condition(&done), timeout);
  }
  void Seed(const std::string& v) {
    internal::MutexLock lock(&mu_);
    version_ = v;
  }
  std::string version() {
    internal::MutexLock lock(&mu_);
    return version_;
  }
  // Until a reported source error contains `what`.
  bool AwaitError(const std::string& what, absl::Duration timeout) {
    internal::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return absl::StrContains(error_text_, what);
    };
    return mu_.AwaitWithTimeout(internal::Condition(&done), timeout);
  }
  std::string error_text() {
    internal::MutexLock lock(&mu_);
    return error_text_;
  }

 private:
  internal::Mutex mu_;
  std::string version_ ABSL_GUARDED_BY(mu_);
  bool stale_ ABSL_GUARDED_BY(mu_) = false;
  std::string error_text_ ABSL_GUARDED_BY(mu_);
};

inline absl::StatusOr<std::unique_ptr<source::Sources>> StartSources(
    const std::vector<std::string>& endpoints, Recorder* rec,
    absl::Duration wait = absl::Seconds(30)) {
  source::SourcesOptions o;
  o.etcd.endpoints = endpoints;
  o.start_wait = wait;
  auto s = source::Sources::Start(o, rec->Callbacks());
  if (s.ok()) {
    rec->Seed((*s)->initial().snapshot->version);
    (*s)->Begin();
  }
  return s;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_SOURCE_TESTLIB_H_
