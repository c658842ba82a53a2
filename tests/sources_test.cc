// The config sources below the mesh, against real servers on loopback
// (started and stopped by PID), also run under ThreadSanitizer: etcd with
// TLS, a client certificate and etcd users; a 3-member etcd cluster losing
// the member a source is connected to, compacting while a source is cut
// off, losing its quorum (the "hasleader" metadata) and hanging (keepalive);
// the DNS source's thread against a real dnsmasq.

#include <signal.h>

#include <fstream>
#include <iostream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "mesh/common/sync.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/config/config.h"
#include "mesh/source/dns_source.h"
#include "mesh/source/etcd_client.h"
#include "mesh/source/etcd_source.h"
#include "mesh/source/last_good.h"
#include "mesh/source/sources.h"
#include "tests/dnsmasq.h"
#include "tests/etcd_process.h"
#include "tests/source_testlib.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using source::EtcdClient;
using testing::Client;
using testing::Etcd;
using testing::ExpectedVersion;
using testing::kDoc;
using testing::MustPut;
using testing::Recorder;
using testing::Set;
using testing::StartSources;

// TLS with a client certificate, and etcd users: the source authenticates;
// a wrong password is a clear error.
TEST(EtcdSourcesTest, TlsAndUsers) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp_("mesh-etcd-tls");
  auto ca = identity::DevCa::Create("etcd-test-ca");
  ASSERT_TRUE(ca.ok());
  identity::LeafOptions server;
  server.dns_names = {"etcd.test"};
  auto scert = (*ca)->Issue(server);
  identity::LeafOptions client;
  client.dns_names = {"mesh-client"};
  auto ccert = (*ca)->Issue(client);
  ASSERT_TRUE(scert.ok() && ccert.ok());
  const std::string d = tmp_.path();
  std::ofstream(d + "/ca.pem") << (*ca)->cert_pem();
  std::ofstream(d + "/server.pem") << scert->cert;
  std::ofstream(d + "/server.key") << scert->key;
  std::ofstream(d + "/client.pem") << ccert->cert;
  std::ofstream(d + "/client.key") << ccert->key;

  Etcd tls(d + "/tls-data", "t1");
  tls.SetTls(d + "/server.pem", d + "/server.key", d + "/ca.pem");
  tls.Start();
  ASSERT_TRUE(tls.AwaitHealthy(absl::Seconds(30)));
  source::EtcdOptions eo;
  eo.endpoints = {tls.endpoint()};
  eo.ca_file = d + "/ca.pem";
  eo.cert_file = d + "/client.pem";
  eo.key_file = d + "/client.key";
  eo.server_name = "etcd.test";
  auto admin = EtcdClient::Create(eo);
  ASSERT_TRUE(admin.ok()) << admin.status();
  MustPut(**admin, "/mesh/config", kDoc);

  // Users on: root, and a reader of /mesh/ (etcd's auth API).
  {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = (*ca)->cert_pem();
    ssl.pem_cert_chain = ccert->cert;
    ssl.pem_private_key = ccert->key;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("etcd.test");
    auto auth = etcdserverpb::Auth::NewStub(grpc::CreateCustomChannel(
        "ipv4:" + tls.endpoint(), grpc::SslCredentials(ssl), args));
    grpc::ClientContext c1, c2, c3, c4, c5;
    etcdserverpb::AuthUserAddRequest root, mesh_user;
    root.set_name("root");
    root.set_password("rootpw");
    mesh_user.set_name("mesh");
    mesh_user.set_password("s3cret");
    etcdserverpb::AuthUserAddResponse r1;
    ASSERT_TRUE(auth->UserAdd(&c1, root, &r1).ok());
    ASSERT_TRUE(auth->UserAdd(&c2, mesh_user, &r1).ok());
    etcdserverpb::AuthUserGrantRoleRequest g;
    g.set_user("root");
    g.set_role("root");
    etcdserverpb::AuthUserGrantRoleResponse r2;
    ASSERT_TRUE(auth->UserGrantRole(&c3, g, &r2).ok());
    g.set_user("mesh");
    ASSERT_TRUE(auth->UserGrantRole(&c4, g, &r2).ok());
    etcdserverpb::AuthEnableRequest en;
    etcdserverpb::AuthEnableResponse r3;
    ASSERT_TRUE(auth->AuthEnable(&c5, en, &r3).ok());
  }
  source::SourcesOptions so;
  so.etcd = eo;
  so.etcd.username = "mesh";
  so.etcd.password = "s3cret";
  so.start_wait = absl::Seconds(20);
  Recorder rec;
  auto s = source::Sources::Start(so, rec.Callbacks());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->initial().snapshot->config->services.size(), 1u);

  so.etcd.password = "wrong";
  so.start_wait = absl::Seconds(3);
  Recorder rec2;
  auto bad = source::Sources::Start(so, rec2.Callbacks());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(),
                                "authenticate as user \"mesh\""))
      << bad.status();
}

// A 3-member cluster. The source is connected to the first member (its
// channel picks the first that answers); that member is killed and 20 more
// puts land on the others: all arrive. Then a source that knows only the
// third member is cut off while its history is compacted; when the member
// is back, the source lists again and ends at what etcd holds.
// A 3-member cluster under `dir`; `all` gets the client endpoints of the
// members that became healthy (all three, unless one failed to).
std::vector<std::unique_ptr<Etcd>> HealthyCluster(
    const std::string& dir, std::vector<std::string>* all) {
  auto members = testing::StartCluster(dir, 3);
  for (auto& m : members) {
    if (m->AwaitHealthy(absl::Seconds(60))) all->push_back(m->endpoint());
  }
  return members;
}

TEST(EtcdClusterSourceTest, KilledMemberAndCompactionWhileDisconnected) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp("mesh-etcd3-src");
  std::vector<std::string> all;
  auto members = HealthyCluster(tmp.path(), &all);
  ASSERT_EQ(all.size(), 3u) << "a member did not become healthy";
  auto writer = Client({all[1], all[2]});
  MustPut(*writer, "/mesh/config", kDoc);
  Recorder rec, rec3;
  auto src = StartSources(all, &rec);
  ASSERT_TRUE(src.ok()) << src.status();
  auto src3 = StartSources({all[2]}, &rec3);
  ASSERT_TRUE(src3.ok()) << src3.status();
  for (int i = 0; i < 10; ++i) {
    MustPut(*writer, absl::StrCat("/mesh/endpoints/default/greeter/k", i),
            Set(20000 + i));
  }
  // Registered instances too (the re-list must give them back as they are).
  for (int i = 0; i < 4; ++i) {
    MustPut(*writer, absl::StrCat("/mesh/instances/default/greeter/i", i),
            testing::Instance(21000 + i));
  }
  std::string want = ExpectedVersion(*writer);
  ASSERT_TRUE(rec.AwaitVersion(want, absl::Seconds(20)));

  members[0]->Kill();  // The member `src` is connected to.
  for (int i = 10; i < 30; ++i) {
    MustPut(*writer, absl::StrCat("/mesh/endpoints/default/greeter/k", i),
            Set(20000 + i));
  }
  want = ExpectedVersion(*writer);
  EXPECT_TRUE(rec.AwaitVersion(want, absl::Seconds(60)))
      << rec.version() << " != " << want;
  EXPECT_TRUE(rec3.AwaitVersion(want, absl::Seconds(60)));

  // Bring the first member back (quorum without the third), then cut the
  // third off: src3 is disconnected.
  members[0]->Start();
  ASSERT_TRUE(members[0]->AwaitHealthy(absl::Seconds(60)));
  members[2]->Stop();
  auto writer01 = Client({all[0], all[1]});
  int64_t rev = 0;
  for (int i = 30; i < 40; ++i) {
    MustPut(*writer01, absl::StrCat("/mesh/endpoints/default/greeter/k", i),
            Set(20000 + i));
  }
  ASSERT_TRUE(writer01->Delete("/mesh/endpoints/default/greeter/k1").ok());
  // An instance leaves and another comes while src3 is away: after its
  // re-list it has exactly what etcd has (the one that left is not held by
  // the mass-removal guard: the re-list removes only what is gone).
  ASSERT_TRUE(writer01->Delete("/mesh/instances/default/greeter/i3").ok());
  MustPut(*writer01, "/mesh/instances/default/greeter/i4",
          testing::Instance(21004));
  auto last = writer01->Put("/mesh/endpoints/default/greeter/k0", Set(20100));
  ASSERT_TRUE(last.ok());
  rev = *last;
  ASSERT_TRUE(writer01->Compact(rev).ok());
  members[2]->Start();
  ASSERT_TRUE(members[2]->AwaitHealthy(absl::Seconds(60)));
  want = ExpectedVersion(*writer01);
  EXPECT_TRUE(rec3.AwaitVersion(want, absl::Seconds(90)))
      << rec3.version() << " != " << want;
  // It got there by listing again.
  EXPECT_TRUE(absl::StrContains(rec3.error_text(), "compacted to revision"))
      << rec3.error_text();
  EXPECT_TRUE(rec.AwaitVersion(want, absl::Seconds(30)));
}

// The source's calls and watch carry etcd's "hasleader" metadata: a member
// that has lost its quorum cancels the watch ("etcdserver: no leader")
// instead of keeping the source silently waiting on a member that will
// never see another change, and the source reports it. Once the quorum is
// back, puts arrive again.
TEST(EtcdClusterSourceTest, AMemberWithoutALeaderIsReported) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp("mesh-etcd3-leader");
  std::vector<std::string> all;
  auto members = HealthyCluster(tmp.path(), &all);
  ASSERT_EQ(all.size(), 3u) << "a member did not become healthy";
  auto writer = Client(all);
  MustPut(*writer, "/mesh/config", kDoc);
  MustPut(*writer, "/mesh/endpoints/default/greeter/k0", Set(21000));
  Recorder rec;
  auto src = StartSources({all[2]}, &rec);  // The third member only.
  ASSERT_TRUE(src.ok()) << src.status();
  ASSERT_TRUE(rec.AwaitVersion(ExpectedVersion(*writer), absl::Seconds(20)));

  members[0]->Kill();
  members[1]->Kill();  // The third is alone: no quorum, no leader.
  EXPECT_TRUE(rec.AwaitError("no leader", absl::Seconds(30)))
      << rec.error_text();

  members[0]->Start();
  members[1]->Start();
  for (int i : {0, 1}) {
    ASSERT_TRUE(members[i]->AwaitHealthy(absl::Seconds(60)));
  }
  auto writer01 = Client({all[0], all[1]});
  MustPut(*writer01, "/mesh/endpoints/default/greeter/k1", Set(21001));
  const std::string want = ExpectedVersion(*writer01);
  EXPECT_TRUE(rec.AwaitVersion(want, absl::Seconds(60)))
      << rec.version() << " != " << want << "; errors: " << rec.error_text();
}

// The member a source is connected to hangs (SIGSTOP: its port stays open
// and nothing answers, so nothing fails fast): keepalive finds the dead
// connection and the source moves to another member; puts made meanwhile
// all arrive.
TEST(EtcdClusterSourceTest, AHungMemberIsLeft) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp("mesh-etcd3-hung");
  std::vector<std::string> all;
  auto members = HealthyCluster(tmp.path(), &all);
  ASSERT_EQ(all.size(), 3u) << "a member did not become healthy";
  auto writer = Client({all[1], all[2]});
  MustPut(*writer, "/mesh/config", kDoc);
  Recorder rec;
  auto src = StartSources(all, &rec);  // pick_first: connected to the first.
  ASSERT_TRUE(src.ok()) << src.status();
  ASSERT_TRUE(rec.AwaitVersion(ExpectedVersion(*writer), absl::Seconds(20)));

  const absl::Time hung = absl::Now();
  members[0]->Pause();
  for (int i = 0; i < 5; ++i) {
    MustPut(*writer, absl::StrCat("/mesh/endpoints/default/greeter/h", i),
            Set(22000 + i));
  }
  const std::string want = ExpectedVersion(*writer);
  const bool arrived = rec.AwaitVersion(want, absl::Seconds(60));
  std::cout << "after the hang: " << absl::Now() - hung << "; errors: "
            << rec.error_text() << std::endl;
  members[0]->Resume();
  EXPECT_TRUE(arrived) << rec.version() << " != " << want;
}

// The composition of a config document (from `file`) and one etcd
// endpoint set, as the sources would make it.
absl::StatusOr<source::Composer::Result> FileAndSet(const std::string& file,
                                                    const std::string& doc,
                                                    const std::string& key,
                                                    const std::string& set) {
  source::Composer c;
  c.SetDocument(file, doc);
  c.SetEndpointSet(source::EtcdSource::PartKey(key), set);
  return c.Compose();
}

// A stale start that mixes: the config file answers, etcd does not, so the
// etcd parts come from the last-known-good copy and the document from the
// file; when etcd answers, its parts replace the copy's and the config is
// fresh.
TEST(EtcdSourcesTest, StaleStartMixesFreshPartsWithTheCopy) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp("mesh-stale-mix");
  const std::string file = tmp.path() + "/mesh.yaml";
  const std::string state = tmp.path() + "/state";
  const std::string set_key = "/mesh/endpoints/default/greeter/c1";
  // What the copy holds: an older document and etcd's set then.
  auto saved = FileAndSet(file, std::string("# old\n") + kDoc, set_key,
                          Set(7001));
  ASSERT_TRUE(saved.ok()) << saved.status();
  ASSERT_TRUE(source::SaveLastGood(state, saved->text,
                                   saved->snapshot->version, absl::Now())
                  .ok());
  testing::WriteFile(file, kDoc);  // The file now: the current document.

  Etcd etcd(tmp.path() + "/etcd");  // Not started yet.
  source::SourcesOptions o;
  o.config_path = file;
  o.etcd.endpoints = {etcd.endpoint()};
  o.state_dir = state;
  o.start_wait = absl::Seconds(1);
  Recorder rec;
  auto s = source::Sources::Start(o, rec.Callbacks());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->initial_stale());
  EXPECT_TRUE(absl::StrContains((*s)->stale_reason(), "etcd")) << (*s)->stale_reason();
  // The fresh document with the copy's etcd part.
  auto want_mixed = FileAndSet(file, kDoc, set_key, Set(7001));
  ASSERT_TRUE(want_mixed.ok());
  EXPECT_EQ((*s)->initial().snapshot->version, want_mixed->snapshot->version);
  rec.Seed((*s)->initial().snapshot->version);
  (*s)->Begin();

  // etcd answers with a newer set: fresh, file + etcd now.
  etcd.Start();
  ASSERT_TRUE(etcd.AwaitHealthy(absl::Seconds(30)));
  auto c = Client({etcd.endpoint()});
  MustPut(*c, set_key, Set(7002));
  const std::string want = ExpectedVersion(*c, file, kDoc);
  EXPECT_TRUE(rec.AwaitFresh(want, absl::Seconds(60))) << rec.version();
}

// The mix does not compose (the file is invalid at start): the copy alone
// runs, stale. etcd, which did answer, gives its parts again, and once the
// file is fixed the config is fresh: file + etcd's current parts.
TEST(EtcdSourcesTest, AnInvalidFileAtStartRunsTheCopyAloneUntilFixed) {
  ASSERT_TRUE(testing::HaveEtcd());
  testing::TempDir tmp("mesh-stale-copy");
  const std::string file = tmp.path() + "/mesh.yaml";
  const std::string state = tmp.path() + "/state";
  const std::string set_key = "/mesh/endpoints/default/greeter/c1";
  Etcd etcd(tmp.path() + "/etcd");
  etcd.Start();
  ASSERT_TRUE(etcd.AwaitHealthy(absl::Seconds(30)));
  auto c = Client({etcd.endpoint()});
  MustPut(*c, set_key, Set(7002));
  auto saved = FileAndSet(file, kDoc, set_key, Set(7001));
  ASSERT_TRUE(saved.ok()) << saved.status();
  ASSERT_TRUE(source::SaveLastGood(state, saved->text,
                                   saved->snapshot->version, absl::Now())
                  .ok());
  testing::WriteFile(file, "apiVersion: mesh/v1\nservices: 7\n");

  source::SourcesOptions o;
  o.config_path = file;
  o.etcd.endpoints = {etcd.endpoint()};
  o.state_dir = state;
  o.start_wait = absl::Seconds(10);
  Recorder rec;
  auto s = source::Sources::Start(o, rec.Callbacks());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->initial_stale());
  EXPECT_EQ((*s)->initial().snapshot->version, saved->snapshot->version);
  rec.Seed(saved->snapshot->version);
  (*s)->Begin();
  testing::WriteFile(file, kDoc);  // Fixed.
  const std::string want = ExpectedVersion(*c, file, kDoc);
  EXPECT_TRUE(rec.AwaitFresh(want, absl::Seconds(30))) << rec.version();
}

// The DNS source's own thread: answers for new entries at once, a record
// change after its TTL, the last answer kept (and an error reported) while
// the server is gone, entries dropped when the config drops them.
TEST(DnsSourcesTest, ResolvesByTtlAndKeepsTheLastAnswer) {
  ASSERT_TRUE(testing::HaveDnsmasq());
  testing::TempDir tmp("mesh-dns-src");
  testing::Dnsmasq dns(tmp.path());
  dns.SetHosts("127.0.0.5 app.test\n");
  dns.Start();
  internal::Mutex mu;
  std::vector<std::string> seen;  // "KEY ADDRESS" or "KEY error"
  source::DnsOptions o;
  o.servers = {dns.server()};
  auto src = source::DnsSource::Start(
      o, [&](const std::vector<source::DnsSource::Answer>& answers) {
        internal::MutexLock lock(&mu);
        for (const auto& a : answers) {
          seen.push_back(absl::StrCat(
              a.key, " ",
              a.endpoints.ok() && !a.endpoints->empty()
                  ? (*a.endpoints)[0].address
                  : std::string("error")));
        }
      });
  ASSERT_TRUE(src.ok()) << src.status();
  auto await = [&](const std::string& what) {
    internal::MutexLock lock(&mu);
    auto has = [&] {
      return !seen.empty() && seen.back() == what;
    };
    return mu.AwaitWithTimeout(internal::Condition(&has), absl::Seconds(20));
  };
  config::DnsEndpoints e;
  e.name = "app.test";
  e.port = 80;
  // dnsmasq may still be starting: the first answer can be an error, and
  // the entry is retried.
  (*src)->SetEntries({{"dns:default/app k", "default/app", e}});
  EXPECT_TRUE(await("dns:default/app k 127.0.0.5"));
  dns.SetHosts("127.0.0.6 app.test\n");
  dns.Reload();
  EXPECT_TRUE(await("dns:default/app k 127.0.0.6"));  // After the 1 s TTL.
  dns.Stop();
  EXPECT_TRUE(await("dns:default/app k error"));
  (*src)->SetEntries({});
  {
    internal::MutexLock lock(&mu);
    seen.clear();
  }
  // Dropped: no more answers for it, however long we wait for its TTL.
  absl::SleepFor(absl::Milliseconds(1500));  // Nothing to await: an absence.
  internal::MutexLock lock(&mu);
  EXPECT_TRUE(seen.empty());
}

}  // namespace
}  // namespace mesh
