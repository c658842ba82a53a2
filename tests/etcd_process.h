// A real etcd member for tests (Debian's etcd-server 3.4) on loopback ports,
// started and stopped by PID: alone, or one member of a cluster
// (SetCluster), optionally serving clients over TLS.

#ifndef TESTS_ETCD_PROCESS_H_
#define TESTS_ETCD_PROCESS_H_

#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mesh/telemetry/http_get.h"
#include "tests/child.h"
#include "tests/free_port.h"

namespace mesh {
namespace testing {

inline bool HaveEtcd() { return access("/usr/bin/etcd", X_OK) == 0; }

// One member with its data in `dir`; restartable on the same ports.
class Etcd {
 public:
  explicit Etcd(std::string dir, std::string name = "n1")
      : dir_(std::move(dir)),
        name_(std::move(name)),
        client_(FreePort()),
        peer_(FreePort()),
        metrics_(FreePort()) {}
  std::string PeerUrl() const {
    return absl::StrCat(name_, "=http://127.0.0.1:", peer_);
  }
  void SetCluster(std::string initial_cluster) {
    cluster_ = std::move(initial_cluster);
  }
  // Clients over TLS with this certificate and key (PEM files); with
  // `client_ca`, clients must present a certificate it signed.
  void SetTls(std::string cert, std::string key, std::string client_ca = "") {
    cert_ = std::move(cert);
    key_ = std::move(key);
    client_ca_ = std::move(client_ca);
  }
  void Start() {
    const std::string peer = absl::StrCat("http://127.0.0.1:", peer_);
    const std::string client = absl::StrCat(
        cert_.empty() ? "http" : "https", "://127.0.0.1:", client_);
    std::vector<std::string> args = {
        "/usr/bin/etcd", "--name=" + name_, "--data-dir=" + dir_,
        "--listen-client-urls=" + client, "--advertise-client-urls=" + client,
        "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + (cluster_.empty() ? PeerUrl() : cluster_),
        "--initial-cluster-token=mesh-test", "--log-level=error",
        // Health over plain HTTP on its own port, whatever the client TLS.
        absl::StrCat("--listen-metrics-urls=http://127.0.0.1:", metrics_)};
    if (!cert_.empty()) {
      args.push_back("--cert-file=" + cert_);
      args.push_back("--key-file=" + key_);
      if (!client_ca_.empty()) {
        args.push_back("--client-cert-auth");
        args.push_back("--trusted-ca-file=" + client_ca_);
      }
    }
    child_ = std::make_unique<Child>(args);
  }
  void Stop() { child_.reset(); }  // SIGTERM and reap.
  void Kill() {                    // SIGKILL and reap.
    if (child_ != nullptr) {
      kill(child_->pid(), SIGKILL);
      child_.reset();
    }
  }
  // SIGSTOP / SIGCONT: a hung member (its port stays open, nothing answers).
  void Pause() {
    if (child_ != nullptr) kill(child_->pid(), SIGSTOP);
  }
  void Resume() {
    if (child_ != nullptr) kill(child_->pid(), SIGCONT);
  }
  // Until etcd's own /health says the member serves, at most `timeout`. A
  // gRPC connection attempt made before that can stay stuck for ~10 s
  // (mesh/source/README.md).
  bool AwaitHealthy(absl::Duration timeout) const {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      auto body = telemetry::HttpGet(absl::StrCat("127.0.0.1:", metrics_),
                                     "/health");
      if (body.ok() && absl::StrContains(*body, "\"health\":\"true\"")) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));  // Polls another process.
    }
    return false;
  }
  std::string endpoint() const { return absl::StrCat("127.0.0.1:", client_); }

 private:
  const std::string dir_, name_;
  const int client_, peer_, metrics_;
  std::string cluster_, cert_, key_, client_ca_;
  std::unique_ptr<Child> child_;
};

// `n` members of one cluster, data under `dir`, started.
inline std::vector<std::unique_ptr<Etcd>> StartCluster(const std::string& dir,
                                                       int n) {
  std::vector<std::unique_ptr<Etcd>> members;
  std::string cluster;
  for (int i = 1; i <= n; ++i) {
    members.push_back(std::make_unique<Etcd>(absl::StrCat(dir, "/m", i),
                                             absl::StrCat("m", i)));
    absl::StrAppend(&cluster, i > 1 ? "," : "", members.back()->PeerUrl());
  }
  for (auto& m : members) {
    m->SetCluster(cluster);
    m->Start();
  }
  return members;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_ETCD_PROCESS_H_
