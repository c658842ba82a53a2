#include "mesh/source/etcd_client.h"

#include <arpa/inet.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mesh {
namespace source {
namespace {

// etcd's rpctypes.MetadataRequireLeaderKey: refuse when there is no leader.
void RequireLeader(grpc::ClientContext* ctx) {
  ctx->AddMetadata("hasleader", "true");
}

absl::Status FromGrpc(const grpc::Status& st, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                      absl::StrCat("etcd ", what, ": ", st.error_message()));
}

}  // namespace

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      ++end.back();
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // Every key (etcd's convention).
}

EtcdClient::EtcdClient(EtcdOptions options) : options_(std::move(options)) {}

void EtcdClient::PrepareCall(grpc::ClientContext* ctx, bool deadline) {
  RequireLeader(ctx);
  if (deadline) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  }
  internal::MutexLock lock(&mu_);
  if (!token_.empty()) ctx->AddMetadata("token", token_);
}
EtcdClient::~EtcdClient() = default;

absl::Status EtcdClient::Authenticate(bool renew) {
  if (options_.username.empty()) return absl::OkStatus();
  {
    internal::MutexLock lock(&mu_);
    if (!renew && !token_.empty()) return absl::OkStatus();
    token_.clear();
  }
  grpc::ClientContext ctx;
  PrepareCall(&ctx);
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.username);
  req.set_password(options_.password);
  etcdserverpb::AuthenticateResponse resp;
  const std::shared_ptr<grpc::Channel> ch = Channel();
  const grpc::Status st =
      etcdserverpb::Auth::NewStub(ch)->Authenticate(&ctx, req, &resp);
  NoteResult(st, ch);
  if (!st.ok()) {
    return FromGrpc(st, "authenticate as user \"" + options_.username + "\"");
  }
  internal::MutexLock lock(&mu_);
  token_ = resp.token();
  return absl::OkStatus();
}

namespace {
// etcd's ErrInvalidAuthToken / ErrAuthOldRevision: authenticate again.
bool TokenRejected(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         absl::StrContains(st.error_message(), "invalid auth token") ||
         absl::StrContains(st.error_message(), "revision of auth store is old");
}
}  // namespace

grpc::Status EtcdClient::WithAuth(
    const std::function<grpc::Status(grpc::ClientContext*,
                                     etcdserverpb::KV::Stub&)>& call) {
  return WithAuthOn([&](grpc::ClientContext* ctx,
                        const std::shared_ptr<grpc::Channel>& ch) {
    return call(ctx, *etcdserverpb::KV::NewStub(ch));
  });
}

grpc::Status EtcdClient::WithAuthOn(
    const std::function<grpc::Status(
        grpc::ClientContext*, const std::shared_ptr<grpc::Channel>&)>& call) {
  for (int attempt = 0;; ++attempt) {
    const absl::Status a = Authenticate(/*renew=*/attempt > 0);
    if (!a.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(a.code()),
                          std::string(a.message()));
    }
    grpc::ClientContext ctx;
    PrepareCall(&ctx);
    const std::shared_ptr<grpc::Channel> ch = Channel();
    const grpc::Status st = call(&ctx, ch);
    NoteResult(st, ch);
    if (st.ok() || attempt > 0 || options_.username.empty() ||
        !TokenRejected(st)) {
      return st;
    }
  }
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    EtcdOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints given");
  }
  // Every endpoint an IP literal (one channel over all of them), or a
  // single name resolved by gRPC's DNS resolver.
  std::vector<std::string> v4, v6;
  for (const std::string& e : options.endpoints) {
    const size_t colon = e.rfind(':');
    std::string host = colon == std::string::npos ? e : e.substr(0, colon);
    if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
      host = host.substr(1, host.size() - 2);
    }
    unsigned char buf[16];
    if (colon == std::string::npos || colon + 1 == e.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd endpoint \"", e, "\": give HOST:PORT, e.g. 127.0.0.1:2379"));
    }
    if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
      v4.push_back(e);
    } else if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
      v6.push_back(e);
    }
  }
  std::string scheme;
  std::vector<std::string> members;
  if (!v4.empty() && v6.empty() && v4.size() == options.endpoints.size()) {
    scheme = "ipv4:";
    members = v4;
  } else if (v4.empty() && v6.size() == options.endpoints.size()) {
    scheme = "ipv6:";
    members = v6;
  } else if (options.endpoints.size() == 1 && v4.empty() && v6.empty()) {
    scheme = "dns:///";
    members = options.endpoints;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoints \"", absl::StrJoin(options.endpoints, ","),
        "\": give IP addresses of one family, or one name that resolves to "
        "the members"));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto read = [](const std::string& path, const char* what,
                   std::string* out) -> absl::Status {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        return absl::InvalidArgumentError(
            absl::StrCat("etcd ", what, " ", path, ": cannot read it"));
      }
      out->assign(std::istreambuf_iterator<char>(in), {});
      if (out->find("-----BEGIN") == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("etcd ", what, " ", path, ": not PEM"));
      }
      return absl::OkStatus();
    };
    if (absl::Status st = read(options.ca_file, "CA file", &ssl.pem_root_certs);
        !st.ok()) {
      return st;
    }
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "etcd client certificate and key go together");
    }
    if (!options.cert_file.empty()) {
      if (absl::Status st =
              read(options.cert_file, "certificate", &ssl.pem_cert_chain);
          !st.ok()) {
        return st;
      }
      if (absl::Status st =
              read(options.key_file, "key", &ssl.pem_private_key);
          !st.ok()) {
        return st;
      }
    }
    creds = grpc::SslCredentials(ssl);
  } else if (!options.cert_file.empty() || !options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "an etcd client certificate needs TLS: give the CA file too");
  }
  if (!options.password.empty() && options.username.empty()) {
    return absl::InvalidArgumentError("an etcd password needs a username");
  }
  std::unique_ptr<EtcdClient> c(new EtcdClient(std::move(options)));
  grpc::ChannelArguments args;
  // One member at a time (the first that answers), the next when it is
  // lost: like etcd's own client, and it makes "the member the client is
  // connected to" a known one.
  args.SetLoadBalancingPolicyName("pick_first");
  if (!c->options_.server_name.empty()) {
    args.SetSslTargetNameOverride(c->options_.server_name);
  }
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at its default: it is also
  // gRPC's minimum connect timeout, and against etcd 3.4 shorter values
  // (0.5 s, 1 s) failed every handshake. A stuck attempt is handled by
  // replacing the channel instead (NoteResult; mesh/source/README.md).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Keepalive finds a member that hangs (its port open, nothing answered)
  // within ~9 s. etcd refuses pings more often than every 5 s
  // (--grpc-keepalive-min-time).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 6000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  c->scheme_ = scheme;
  c->members_ = members;
  c->creds_ = creds;
  c->args_ = args;
  internal::MutexLock lock(&c->chan_mu_);
  c->NewChannelLocked();
  return c;
}

void EtcdClient::NewChannelLocked() {
  // A channel argument of its own, so that gRPC does not hand the new
  // channel the old one's (stuck) subchannel from its global pool.
  grpc::ChannelArguments args = args_;
  args.SetInt("mesh.etcd_channel_generation", ++generation_);
  // pick_first tries the members in order: each new channel starts one
  // further along, so that a member that hangs (and so fails nothing fast)
  // is not the first one tried again and again.
  const size_t n = members_.size();
  const size_t first = static_cast<size_t>(generation_ - 1) % n;
  std::vector<std::string> order;
  for (size_t i = 0; i < n; ++i) order.push_back(members_[(first + i) % n]);
  channel_ = grpc::CreateCustomChannel(
      absl::StrCat(scheme_, absl::StrJoin(order, ",")), creds_, args);
  channel_since_ = absl::Now();
}

std::shared_ptr<grpc::Channel> EtcdClient::Channel() {
  internal::MutexLock lock(&chan_mu_);
  return channel_;
}

void EtcdClient::NoteResult(const grpc::Status& st,
                            const std::shared_ptr<grpc::Channel>& used) {
  internal::MutexLock lock(&chan_mu_);
  const absl::Time now = absl::Now();
  if (st.ok()) {
    last_ok_ = now;
    return;
  }
  if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
      st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return;
  }
  // A connection attempt made while etcd was starting can stay stuck for
  // ~10 s (mesh/source/README.md) while new ones succeed at once: a channel
  // that has failed for 2 s is replaced by a fresh one.
  if (used == channel_ && now - std::max(channel_since_, last_ok_) >
                              absl::Seconds(2)) {
    NewChannelLocked();
  }
}

absl::StatusOr<EtcdClient::Listing> EtcdClient::List(
    const std::string& prefix) {
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  req.set_sort_target(etcdserverpb::RangeRequest::KEY);
  etcdserverpb::RangeResponse resp;
  const grpc::Status st =
      WithAuth([&](grpc::ClientContext* ctx, etcdserverpb::KV::Stub& kv) {
        return kv.Range(ctx, req, &resp);
      });
  if (!st.ok()) return FromGrpc(st, "range " + prefix);
  Listing out;
  out.revision = resp.header().revision();
  for (const mvccpb::KeyValue& kv : resp.kvs()) {
    out.kvs.push_back({kv.key(), kv.value(), kv.mod_revision(), kv.lease()});
  }
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key,
                                        const std::string& value,
                                        int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  const grpc::Status st =
      WithAuth([&](grpc::ClientContext* ctx, etcdserverpb::KV::Stub& kv) {
        return kv.Put(ctx, req, &resp);
      });
  if (!st.ok()) return FromGrpc(st, "put " + key);
  return resp.header().revision();
}

absl::StatusOr<int64_t> EtcdClient::Grant(int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse resp;
  const grpc::Status st = WithAuthOn(
      [&](grpc::ClientContext* ctx, const std::shared_ptr<grpc::Channel>& ch) {
        return etcdserverpb::Lease::NewStub(ch)->LeaseGrant(ctx, req, &resp);
      });
  if (!st.ok()) return FromGrpc(st, "lease grant");
  if (!resp.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd lease grant: ", resp.error()));
  }
  return resp.id();
}

absl::StatusOr<int64_t> EtcdClient::KeepAliveOnce(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  bool answered = false;
  const grpc::Status st = WithAuthOn(
      [&](grpc::ClientContext* ctx, const std::shared_ptr<grpc::Channel>& ch) {
        auto stream = etcdserverpb::Lease::NewStub(ch)->LeaseKeepAlive(ctx);
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(lease);
        answered = stream->Write(req) && stream->Read(&resp);
        stream->WritesDone();
        ctx->TryCancel();  // One exchange; the stream's end is ours.
        const grpc::Status fin = stream->Finish();
        return answered ? grpc::Status::OK : fin;
      });
  if (!st.ok()) return FromGrpc(st, absl::StrCat("lease keep-alive ", lease));
  if (resp.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd lease ", lease, " has expired"));
  }
  return resp.ttl();
}

absl::StatusOr<EtcdClient::LeaseTtl> EtcdClient::TimeToLive(int64_t lease) {
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseTimeToLiveResponse resp;
  const grpc::Status st = WithAuthOn(
      [&](grpc::ClientContext* ctx, const std::shared_ptr<grpc::Channel>& ch) {
        return etcdserverpb::Lease::NewStub(ch)->LeaseTimeToLive(ctx, req,
                                                                 &resp);
      });
  if (!st.ok()) return FromGrpc(st, absl::StrCat("lease time-to-live ", lease));
  if (resp.ttl() < 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd lease ", lease, " has expired"));
  }
  return LeaseTtl{resp.ttl(), resp.grantedttl()};
}

absl::Status EtcdClient::Revoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  const grpc::Status st = WithAuthOn(
      [&](grpc::ClientContext* ctx, const std::shared_ptr<grpc::Channel>& ch) {
        return etcdserverpb::Lease::NewStub(ch)->LeaseRevoke(ctx, req, &resp);
      });
  return st.ok() ? absl::OkStatus()
                 : FromGrpc(st, absl::StrCat("lease revoke ", lease));
}

absl::StatusOr<int64_t> EtcdClient::Delete(const std::string& key) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  etcdserverpb::DeleteRangeResponse resp;
  const grpc::Status st =
      WithAuth([&](grpc::ClientContext* ctx, etcdserverpb::KV::Stub& kv) {
        return kv.DeleteRange(ctx, req, &resp);
      });
  if (!st.ok()) return FromGrpc(st, "delete " + key);
  return resp.header().revision();
}

absl::Status EtcdClient::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(true);
  etcdserverpb::CompactionResponse resp;
  const grpc::Status st =
      WithAuth([&](grpc::ClientContext* ctx, etcdserverpb::KV::Stub& kv) {
        return kv.Compact(ctx, req, &resp);
      });
  return st.ok() ? absl::OkStatus()
                 : FromGrpc(st, absl::StrCat("compact ", revision));
}

std::unique_ptr<EtcdClient::Watcher> EtcdClient::Watch(
    const std::string& prefix, int64_t from_revision,
    WatchCallbacks callbacks) {
  return std::unique_ptr<Watcher>(
      new Watcher(this, prefix, from_revision, std::move(callbacks)));
}

EtcdClient::Watcher::Watcher(EtcdClient* client, std::string prefix,
                             int64_t from, WatchCallbacks cb)
    : client_(client),
      prefix_(std::move(prefix)),
      cb_(std::move(cb)),
      next_(from) {
  thread_ = std::thread([this] { Run(); });
}

EtcdClient::Watcher::~Watcher() {
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;  // Also ends a backoff wait.
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  thread_.join();
}

void EtcdClient::Watcher::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool renew = false;  // The last stream ended on a rejected token.
  while (true) {
    std::string auth_error;
    if (absl::Status a = client_->Authenticate(renew); !a.ok()) {
      auth_error = std::string(a.message());
    }
    grpc::ClientContext ctx;
    client_->PrepareCall(&ctx, /*deadline=*/false);
    // The client's channel of the moment (it replaces a stuck one).
    const std::shared_ptr<grpc::Channel> ch = client_->Channel();
    auto stub = etcdserverpb::Watch::NewStub(ch);
    {
      internal::MutexLock lock(&mu_);
      if (stop_) break;
      ctx_ = &ctx;
    }
    auto stream = auth_error.empty() ? stub->Watch(&ctx) : nullptr;
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(PrefixEnd(prefix_));
    create->set_start_revision(next_.load());
    bool compacted = false;
    if (stream != nullptr && stream->Write(req)) {
      etcdserverpb::WatchResponse resp;
      while (stream->Read(&resp)) {
        if (resp.compact_revision() > 0) {
          compacted = true;
          if (cb_.on_compacted) cb_.on_compacted(resp.compact_revision());
          break;
        }
        if (resp.canceled()) break;  // Reconnects below.
        if (resp.created()) {
          client_->NoteResult(grpc::Status::OK, ch);
          if (cb_.on_watching) cb_.on_watching(next_.load());
        }
        if (resp.events_size() == 0) continue;  // Created / progress.
        std::vector<EtcdEvent> events;
        for (const mvccpb::Event& e : resp.events()) {
          // After a reconnect etcd starts at next_: nothing older comes
          // again, but be strict about it.
          if (e.kv().mod_revision() < next_.load()) continue;
          events.push_back({e.type() == mvccpb::Event::DELETE,
                            {e.kv().key(), e.kv().value(),
                             e.kv().mod_revision(), e.kv().lease()}});
        }
        if (events.empty()) continue;
        next_ = events.back().kv.mod_revision + 1;
        backoff = absl::Milliseconds(100);  // Healthy again.
        if (cb_.on_events) cb_.on_events(events);
      }
    }
    if (compacted) ctx.TryCancel();
    const grpc::Status st = stream != nullptr
                                ? stream->Finish()
                                : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                               auth_error);
    renew = TokenRejected(st);
    client_->NoteResult(st, ch);
    {
      internal::MutexLock lock(&mu_);
      ctx_ = nullptr;
      if (compacted || stop_) break;
    }
    if (cb_.on_error) {
      cb_.on_error(absl::StrCat("etcd watch of ", prefix_, " broke (",
                                st.error_message(), "); resuming from revision ",
                                next_.load()));
    }
    // Bounded backoff before the next stream, cut short by stopping.
    {
      internal::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(internal::Condition(&stop_), backoff)) break;
    }
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace source
}  // namespace mesh
