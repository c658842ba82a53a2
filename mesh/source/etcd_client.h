// File: mesh/source/etcd_client.h
//
// A small etcd v3 client over etcd's gRPC API (protos from Debian's
// golang-etcd-server-dev): list a prefix at one revision, put, compact, and
// watch a prefix from a revision, resuming after any disconnect from the
// revision after the last event delivered (no event missed or repeated),
// and reporting when that revision has been compacted (the caller lists
// again and watches from the new revision). The foundation of the etcd
// config source (the sources issue); not yet wired into the agent.
//
// Every call carries etcd's "hasleader" metadata, so a member cut off from
// its cluster's leader refuses instead of serving stale data; the channel
// spreads over all endpoints and reconnects with a bounded backoff and
// keepalive.

#ifndef MESH_SOURCE_ETCD_CLIENT_H_
#define MESH_SOURCE_ETCD_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace source {

struct EtcdOptions {
  // "IP:PORT" of each member (at least one; IPv6 as "[::1]:2379"), or one
  // "NAME:PORT" that resolves to the members.
  std::vector<std::string> endpoints;
  // Deadline of each unary call (list, put, compact).
  absl::Duration call_timeout = absl::Seconds(5);
  // TLS to etcd (its --cert-file/--key-file): the CA bundle that signed the
  // members' certificates, PEM. "" = plaintext.
  std::string ca_file;
  // Client certificate and key, PEM, for etcd's --client-cert-auth.
  std::string cert_file;
  std::string key_file;
  // The name the members' certificates carry, if not the endpoint's host.
  std::string server_name;
  // etcd's own users (etcdctl auth enable): the client authenticates and
  // sends the token with every call, authenticating again when it expires.
  std::string username;
  std::string password;
};

struct EtcdKv {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // The lease it is attached to; 0 = none.
};

struct EtcdEvent {
  bool deleted = false;  // A delete; else a put.
  EtcdKv kv;
};

class EtcdClient {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(
      EtcdOptions options);
  ~EtcdClient();

  struct Listing {
    std::vector<EtcdKv> kvs;  // Sorted by key.
    int64_t revision = 0;     // The store's revision they were read at.
  };
  // Every key under `prefix`.
  absl::StatusOr<Listing> List(const std::string& prefix);
  // Returns the new revision. With a `lease` (Grant), the key goes when
  // the lease does.
  absl::StatusOr<int64_t> Put(const std::string& key, const std::string& value,
                              int64_t lease = 0);
  // Leases (registration, mesh/agent/registrar.h): a new lease of
  // `ttl_seconds`; returns its id.
  absl::StatusOr<int64_t> Grant(int64_t ttl_seconds);
  // Renews `lease` once (one LeaseKeepAlive exchange, as `etcdctl lease
  // keep-alive --once`); returns the seconds it has left. NotFound if it
  // has expired or was revoked.
  absl::StatusOr<int64_t> KeepAliveOnce(int64_t lease);
  // How long `lease` has left and what it was granted, in seconds
  // (LeaseTimeToLive); NotFound if it has expired or was revoked.
  struct LeaseTtl {
    int64_t left = 0;
    int64_t granted = 0;
  };
  absl::StatusOr<LeaseTtl> TimeToLive(int64_t lease);
  // Revokes `lease`: its keys are deleted at once.
  absl::Status Revoke(int64_t lease);
  // Deletes `key`; returns the new revision.
  absl::StatusOr<int64_t> Delete(const std::string& key);
  // Compacts the history up to `revision` (watches from before fail).
  absl::Status Compact(int64_t revision);

  // A running watch; stops when destroyed, which must be before the client
  // is.
  class Watcher;
  struct WatchCallbacks {
    // Each batch of events, in revision order, each delivered once.
    std::function<void(const std::vector<EtcdEvent>&)> on_events;
    // The next revision to watch from was compacted away: list again and
    // start a new watch from the listing's revision + 1. The watch has
    // stopped.
    std::function<void(int64_t compact_revision)> on_compacted;
    // The stream broke (member down, network); it is retried with backoff
    // from the revision after the last event delivered. For status.
    std::function<void(const std::string& error)> on_error;
    // A stream is watching (at start, and again after each break), from
    // this revision.
    std::function<void(int64_t from_revision)> on_watching;
  };
  // Watches every key under `prefix` from `from_revision`.
  std::unique_ptr<Watcher> Watch(const std::string& prefix,
                                 int64_t from_revision,
                                 WatchCallbacks callbacks);

 private:
  explicit EtcdClient(EtcdOptions options);
  // "hasleader", the auth token and (`deadline`) the call deadline.
  void PrepareCall(grpc::ClientContext* ctx, bool deadline = true);
  // Gets a token for username/password (when set and not held).
  absl::Status Authenticate(bool renew);
  // Runs `call` once, and again after a new token if etcd says the token
  // is no longer valid.
  grpc::Status WithAuth(
      const std::function<grpc::Status(grpc::ClientContext*,
                                       etcdserverpb::KV::Stub&)>& call);
  // The same, for any service on the channel.
  grpc::Status WithAuthOn(
      const std::function<grpc::Status(
          grpc::ClientContext*, const std::shared_ptr<grpc::Channel>&)>& call);
  // The channel of the moment. A channel whose calls have failed
  // (UNAVAILABLE, DEADLINE_EXCEEDED) for 2 s since it was made or last
  // worked is replaced (NoteResult): see mesh/source/README.md.
  std::shared_ptr<grpc::Channel> Channel();
  void NoteResult(const grpc::Status& st,
                  const std::shared_ptr<grpc::Channel>& used);
  void NewChannelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(chan_mu_);

  const EtcdOptions options_;
  // The channel target: "ipv4:" / "ipv6:" and the members' addresses
  // (rotated per channel), or "dns:///" and one name.
  std::string scheme_;
  std::vector<std::string> members_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  grpc::ChannelArguments args_;
  internal::Mutex chan_mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(chan_mu_);
  int generation_ ABSL_GUARDED_BY(chan_mu_) = 0;
  absl::Time channel_since_ ABSL_GUARDED_BY(chan_mu_);
  absl::Time last_ok_ ABSL_GUARDED_BY(chan_mu_) = absl::InfinitePast();
  internal::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

class EtcdClient::Watcher {
 public:
  ~Watcher();

 private:
  friend class EtcdClient;
  Watcher(EtcdClient* client, std::string prefix, int64_t from,
          WatchCallbacks cb);
  void Run();

  EtcdClient* const client_;  // Outlives its watchers.
  const std::string prefix_;
  const WatchCallbacks cb_;
  std::atomic<int64_t> next_;
  internal::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;  // In progress.
  std::thread thread_;
};

// The first key after every key starting with `prefix` (etcd's range_end
// for a prefix).
std::string PrefixEnd(const std::string& prefix);

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_ETCD_CLIENT_H_
