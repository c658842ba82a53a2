#include "mesh/source/etcd_client.h"

#include <algorithm>

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

void EtcdClient::PrepareCall(grpc::ClientContext* ctx) const {
  RequireLeader(ctx);
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
}
EtcdClient::~EtcdClient() = default;

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    EtcdOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints given");
  }
  std::unique_ptr<EtcdClient> c(new EtcdClient(std::move(options)));
  grpc::ChannelArguments args;
  // Any member will do; a lost one is left for the next.
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at its default: it is also
  // gRPC's minimum connect timeout, and against etcd 3.4 any value tried
  // (100 ms, 1 s) failed every handshake ("tcp handshaker shutdown"). With
  // the default (20 s) a first connection to a just-started etcd can take
  // that long: see mesh/source/README.md.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  c->channel_ = grpc::CreateCustomChannel(
      absl::StrCat("ipv4:", absl::StrJoin(c->options_.endpoints, ",")),
      grpc::InsecureChannelCredentials(), args);
  c->kv_ = etcdserverpb::KV::NewStub(c->channel_);
  return c;
}

absl::StatusOr<EtcdClient::Listing> EtcdClient::List(
    const std::string& prefix) {
  grpc::ClientContext ctx;
  PrepareCall(&ctx);
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  req.set_sort_target(etcdserverpb::RangeRequest::KEY);
  etcdserverpb::RangeResponse resp;
  const grpc::Status st = kv_->Range(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st, "range " + prefix);
  Listing out;
  out.revision = resp.header().revision();
  for (const mvccpb::KeyValue& kv : resp.kvs()) {
    out.kvs.push_back({kv.key(), kv.value(), kv.mod_revision()});
  }
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key,
                                        const std::string& value) {
  grpc::ClientContext ctx;
  PrepareCall(&ctx);
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  etcdserverpb::PutResponse resp;
  const grpc::Status st = kv_->Put(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st, "put " + key);
  return resp.header().revision();
}

absl::Status EtcdClient::Compact(int64_t revision) {
  grpc::ClientContext ctx;
  PrepareCall(&ctx);
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(true);
  etcdserverpb::CompactionResponse resp;
  const grpc::Status st = kv_->Compact(&ctx, req, &resp);
  return st.ok() ? absl::OkStatus()
                 : FromGrpc(st, absl::StrCat("compact ", revision));
}

std::unique_ptr<EtcdClient::Watcher> EtcdClient::Watch(
    const std::string& prefix, int64_t from_revision,
    WatchCallbacks callbacks) {
  return std::unique_ptr<Watcher>(
      new Watcher(channel_, prefix, from_revision, std::move(callbacks)));
}

EtcdClient::Watcher::Watcher(std::shared_ptr<grpc::Channel> channel,
                             std::string prefix, int64_t from,
                             WatchCallbacks cb)
    : channel_(std::move(channel)),
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
  auto stub = etcdserverpb::Watch::NewStub(channel_);
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::ClientContext ctx;
    RequireLeader(&ctx);
    {
      internal::MutexLock lock(&mu_);
      if (stop_) break;
      ctx_ = &ctx;
    }
    auto stream = stub->Watch(&ctx);
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(PrefixEnd(prefix_));
    create->set_start_revision(next_.load());
    bool compacted = false;
    if (stream->Write(req)) {
      etcdserverpb::WatchResponse resp;
      while (stream->Read(&resp)) {
        if (resp.compact_revision() > 0) {
          compacted = true;
          if (cb_.on_compacted) cb_.on_compacted(resp.compact_revision());
          break;
        }
        if (resp.canceled()) break;  // Reconnects below.
        if (resp.events_size() == 0) continue;  // Created / progress.
        std::vector<EtcdEvent> events;
        for (const mvccpb::Event& e : resp.events()) {
          // After a reconnect etcd starts at next_: nothing older comes
          // again, but be strict about it.
          if (e.kv().mod_revision() < next_.load()) continue;
          events.push_back({e.type() == mvccpb::Event::DELETE,
                            {e.kv().key(), e.kv().value(),
                             e.kv().mod_revision()}});
        }
        if (events.empty()) continue;
        next_ = events.back().kv.mod_revision + 1;
        backoff = absl::Milliseconds(100);  // Healthy again.
        if (cb_.on_events) cb_.on_events(events);
      }
    }
    if (compacted) ctx.TryCancel();
    const grpc::Status st = stream->Finish();
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
