#include "examples/gateway/gateway.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mesh {
namespace gateway {

// ---------------------------------------------------------------- helpers

std::string AuthorityHost(const std::string& authority) {
  std::string h = authority;
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    h = close == std::string::npos ? h.substr(1) : h.substr(1, close - 1);
  } else if (std::count(h.begin(), h.end(), ':') == 1) {
    h = h.substr(0, h.find(':'));
  }
  return absl::AsciiStrToLower(h);
}

std::string PeerAddress(const std::string& peer) {
  absl::string_view p = peer;
  if (absl::ConsumePrefix(&p, "ipv4:")) {
    return std::string(p.substr(0, p.rfind(':')));
  }
  if (absl::ConsumePrefix(&p, "ipv6:")) {
    if (absl::ConsumePrefix(&p, "[")) return std::string(p.substr(0, p.find(']')));
    return std::string(p);
  }
  return peer;  // unix:..., or unknown forms: the whole string.
}

namespace {

// Connection-specific (RFC 9113 8.2.2) and transport headers, which belong
// to one hop; gRPC's reserved grpc-* headers (grpc-timeout becomes the
// deadline); and what the gateway sets or consumes itself.
const std::set<std::string>& HopHeaders() {
  static const auto* h = new std::set<std::string>{
      "connection", "keep-alive", "proxy-connection", "transfer-encoding",
      "upgrade", "te", "host", "content-type", "content-length",
      "user-agent", "x-api-key", "x-forwarded-for"};
  return *h;
}

}  // namespace

bool ForwardRequestHeader(const std::string& key) {
  return !key.empty() && key[0] != ':' && !absl::StartsWith(key, "grpc-") &&
         !absl::StartsWith(key, "x-mesh-") && HopHeaders().count(key) == 0;
}

bool ForwardRequestHeader(const std::string& key, const GatewayConfig& c) {
  if (!ForwardRequestHeader(key)) return false;
  if (!c.has_jwt) return true;
  if (key == "authorization") return c.jwt.forward_token;
  for (const auto& [claim, header] : c.jwt.claim_headers) {
    if (key == header) return false;  // Only the gateway sets these.
  }
  return true;
}

bool ForwardResponseHeader(const std::string& key) {
  return !key.empty() && key[0] != ':' && !absl::StartsWith(key, "grpc-") &&
         HopHeaders().count(key) == 0;
}

// ------------------------------------------------------------ ClientLimits

ClientLimits::ClientLimits(const Limits& limits)
    : limits_(limits),
      burst_(std::max(1.0, limits.burst_per_client > 0
                               ? limits.burst_per_client
                               : limits.calls_per_second_per_client)) {}

ClientLimits::Verdict ClientLimits::Admit(const std::string& client,
                                          absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (clients_.size() > 100000) {
    // Bounded memory with many distinct callers: forget idle ones (their
    // buckets start full again).
    for (auto it = clients_.begin(); it != clients_.end();) {
      it = it->second.open == 0 ? clients_.erase(it) : std::next(it);
    }
  }
  State& s = clients_[client];
  if (s.open >= limits_.max_streams_per_client) {
    return Verdict::kTooManyStreams;
  }
  if (limits_.calls_per_second_per_client > 0) {
    if (s.refilled == absl::InfinitePast()) {
      s.tokens = burst_;
    } else {
      s.tokens = std::min(
          burst_, s.tokens + absl::ToDoubleSeconds(now - s.refilled) *
                                 limits_.calls_per_second_per_client);
    }
    s.refilled = now;
    if (s.tokens < 1) return Verdict::kRateLimited;
    s.tokens -= 1;
  }
  ++s.open;
  return Verdict::kAdmit;
}

void ClientLimits::Release(const std::string& client) {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(client);
  if (it != clients_.end() && it->second.open > 0) --it->second.open;
}

// ---------------------------------------------------------------- Reject

namespace {

bool PrintableHeader(const std::string& v) {
  for (unsigned char c : v) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Answers a call with `status` without proxying it.
class Reject final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Reject(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// ------------------------------------------------------------------- Call

// One proxied call: the outside call (this reactor, "down") and the call into
// the mesh (Upstream, "up"). Messages flow one at a time each way: a message
// read from one side is written to the other, and the next read starts when
// that write is done, so the gateway holds at most one message per
// direction and HTTP/2 flow control pushes back on a fast sender. Deleted
// when both sides are done.
class Gateway::Call final : public grpc::ServerGenericBidiReactor {
 public:
  Call(Gateway* gw, grpc::GenericCallbackServerContext* ctx,
       grpc::GenericStub* stub, const Caller& caller)
      : gw_(gw), ctx_(ctx), client_(caller.client), up_(this) {
    up_ctx_.set_deadline(ctx->deadline());
    for (const auto& [k, v] : ctx->client_metadata()) {
      const std::string key(k.data(), k.size());
      if (ForwardRequestHeader(key, gw_->config_)) {
        up_ctx_.AddMetadata(key, std::string(v.data(), v.size()));
      }
    }
    if (caller.has_token) {
      for (const auto& [claim, header] : gw_->config_.jwt.claim_headers) {
        auto it = caller.token.claims.find(claim);
        // Only values gRPC accepts in a text header (printable ASCII);
        // another would fail the call inside gRPC.
        if (it != caller.token.claims.end() && PrintableHeader(it->second)) {
          up_ctx_.AddMetadata(header, it->second);
        }
      }
    }
    // Who called, for the destination's logs and decisions; x-mesh-* from
    // outside is dropped above, so these cannot be forged.
    up_ctx_.AddMetadata("x-mesh-gateway-client", client_);
    up_ctx_.AddMetadata("x-forwarded-for", PeerAddress(ctx->peer()));
    gw_->counters_.calls.fetch_add(1, std::memory_order_relaxed);
    stub->PrepareBidiStreamingCall(&up_ctx_, ctx->method(),
                                   grpc::StubOptions(), &up_);
    // Upstream reads and writes are started from the outside call's
    // reactions too, so the upstream call must not complete under them:
    // one hold for the request flow, one for the response flow, each
    // removed when its flow can start no more upstream operations.
    up_.AddMultipleHolds(2);
    up_.StartRead(&response_);
    up_.StartCall();
    StartRead(&request_);
  }

  // ---- outside caller ("down")
  void OnReadDone(bool ok) override {
    if (!ok) {  // Half-close (or a failed call: OnCancel follows).
      up_.StartWritesDone();
      up_.RemoveHold();  // Request flow: done.
      return;
    }
    if (TooLarge(request_, "request")) {
      up_.RemoveHold();  // Request flow: stopped.
      return;
    }
    up_.StartWrite(&request_);
  }
  void OnWriteDone(bool ok) override {
    if (ok) {
      up_.StartRead(&response_);
    } else {
      up_ctx_.TryCancel();  // The outside caller is gone.
      up_.RemoveHold();     // Response flow: stopped.
    }
  }
  void OnCancel() override {
    gw_->counters_.cancelled.fetch_add(1, std::memory_order_relaxed);
    up_ctx_.TryCancel();
  }
  void OnDone() override { Unref(); }

  // ---- the call into the mesh ("up")
  void UpReadDone(bool ok) {
    if (!ok) {
      up_.RemoveHold();  // Response flow: done.
      return;
    }
    if (TooLarge(response_, "response")) {
      up_.RemoveHold();  // Response flow: stopped.
      return;
    }
    ForwardInitialMetadata();
    // The response flow's hold stays until this write is done, so UpDone
    // (and Finish) cannot come while it is in flight.
    StartWrite(&response_);
  }
  void UpWriteDone(bool ok) {
    if (ok) {
      StartRead(&request_);
    } else {
      up_.RemoveHold();  // Request flow: the call into the mesh has ended.
    }
  }
  // After every upstream operation and both holds: once, with no write to
  // the outside caller in flight.
  void UpDone(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (up_status_.ok()) up_status_ = status;  // Keep our own error.
    }
    FinishDown();
    Unref();
  }

 private:
  class Upstream final
      : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(Call* call) : call_(call) {}
    void OnReadDone(bool ok) override { call_->UpReadDone(ok); }
    void OnWriteDone(bool ok) override { call_->UpWriteDone(ok); }
    void OnDone(const grpc::Status& s) override { call_->UpDone(s); }

   private:
    Call* const call_;
  };

  ~Call() override { gw_->limits_.Release(client_); }

  // Fails the call if `m` is over the message limit: the destination's call
  // is cancelled and the outside caller gets RESOURCE_EXHAUSTED.
  bool TooLarge(const grpc::ByteBuffer& m, const char* what) {
    const int64_t max = gw_->config_.limits.max_message_bytes;
    if (static_cast<int64_t>(m.Length()) <= max) return false;
    gw_->counters_.message_too_large.fetch_add(1, std::memory_order_relaxed);
    {
      absl::MutexLock lock(&mu_);
      up_status_ = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: ", what, " message of ", m.Length(),
                       " bytes is over the limit of ", max, " bytes"));
    }
    up_ctx_.TryCancel();  // UpDone finishes the outside call.
    return true;
  }

  // Gives the outside call the destination's initial metadata, once; it
  // goes out with the first message (or the status), as a gRPC C++ server
  // sends it, which saves a batch per call over sending it on its own.
  // Called from upstream reactions only, which gRPC runs one after another
  // and all before UpDone.
  void ForwardInitialMetadata() {
    if (initial_metadata_sent_) return;
    initial_metadata_sent_ = true;
    for (const auto& [k, v] : up_ctx_.GetServerInitialMetadata()) {
      const std::string key(k.data(), k.size());
      if (ForwardResponseHeader(key)) {
        ctx_->AddInitialMetadata(key, std::string(v.data(), v.size()));
      }
    }
  }

  // Once, from UpDone. Not under the lock: Finish may run OnDone inline.
  void FinishDown() {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      status = up_status_;
    }
    ForwardInitialMetadata();  // If no message carried it: with the status.
    for (const auto& [k, v] : up_ctx_.GetServerTrailingMetadata()) {
      const std::string key(k.data(), k.size());
      if (ForwardResponseHeader(key)) {
        ctx_->AddTrailingMetadata(key, std::string(v.data(), v.size()));
      }
    }
    if (status.ok()) {
      gw_->counters_.calls_ok.fetch_add(1, std::memory_order_relaxed);
    }
    Finish(status);
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Gateway* const gw_;
  grpc::GenericCallbackServerContext* const ctx_;
  const std::string client_;
  grpc::ClientContext up_ctx_;
  Upstream up_;
  grpc::ByteBuffer request_;   // Outside -> mesh, one at a time.
  grpc::ByteBuffer response_;  // Mesh -> outside, one at a time.
  std::atomic<int> refs_{2};   // This reactor's OnDone and Upstream's.

  absl::Mutex mu_;
  bool initial_metadata_sent_ = false;  // Upstream reactions only.
  grpc::Status up_status_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------- Gateway

Gateway::Gateway(GatewayConfig config, const ChannelFactory& channel_for,
                 std::unique_ptr<JwtVerifier> jwt, Log log)
    : config_(std::move(config)),
      jwt_(std::move(jwt)),
      log_(log != nullptr ? std::move(log)
                          : [](const std::string& line) {
                              std::cout << (line + "\n") << std::flush;
                            }),
      limits_(config_.limits) {
  for (const Route& r : config_.routes) {
    Destination& d = destinations_[r.destination];
    if (d.channel == nullptr) {
      d.channel = channel_for(r.destination);
      d.stub = std::make_unique<grpc::GenericStub>(d.channel);
    }
  }
}

grpc::Status Gateway::Authenticate(
    const grpc::GenericCallbackServerContext& ctx, Caller* caller) const {
  const auto& md = ctx.client_metadata();
  const auto auth = md.find("authorization");
  if (jwt_ != nullptr && auth != md.end()) {
    absl::string_view value(auth->second.data(), auth->second.size());
    std::string why;
    if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
      why = "authorization is not \"Bearer <token>\"";
    } else {
      auto token = jwt_->Verify(absl::StripLeadingAsciiWhitespace(value.substr(7)),
                                absl::Now());
      if (token.ok()) {
        caller->client = token->subject;
        caller->has_token = true;
        caller->token = *std::move(token);
        return grpc::Status::OK;
      }
      why = std::string(token.status().message());
    }
    log_(absl::StrCat("gateway: UNAUTHENTICATED ", ctx.method(), " from ",
                      ctx.peer(), ": bearer token refused: ", why));
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "gateway: the bearer token is not valid");
  }
  if (!config_.api_keys.empty()) {
    caller->client = ApiKeyClient(ctx);
    if (!caller->client.empty()) return grpc::Status::OK;
  } else if (jwt_ == nullptr) {
    caller->client = PeerAddress(ctx.peer());  // allowUnauthenticated
    return grpc::Status::OK;
  }
  log_(absl::StrCat("gateway: UNAUTHENTICATED ", ctx.method(), " from ",
                    ctx.peer(), ": ",
                    md.count("x-api-key") != 0 ? "unknown API key"
                                               : "no credential"));
  std::string what;
  if (!config_.api_keys.empty() && jwt_ != nullptr) {
    what = "a valid API key (metadata x-api-key) or bearer token (metadata "
           "authorization) is required";
  } else if (jwt_ != nullptr) {
    what = "a bearer token is required (metadata authorization)";
  } else {
    what = "a valid API key is required (metadata x-api-key)";
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat("gateway: ", what));
}

std::string Gateway::ApiKeyClient(
    const grpc::GenericCallbackServerContext& ctx) const {
  auto it = ctx.client_metadata().find("x-api-key");
  if (it == ctx.client_metadata().end()) return "";
  const std::string hash =
      Sha256Hex(absl::string_view(it->second.data(), it->second.size()));
  std::string client;
  for (const ApiKey& k : config_.api_keys) {  // No early exit: constant time.
    if (CRYPTO_memcmp(hash.data(), k.sha256_hex.data(), hash.size()) == 0) {
      client = k.client;
    }
  }
  return client;
}

const Route* Gateway::FindRoute(const std::string& host,
                                const std::string& method) const {
  for (const Route& r : config_.routes) {
    const bool host_ok =
        r.host == "*" || r.host == host ||
        (absl::StartsWith(r.host, "*.") &&
         absl::EndsWith(host, absl::string_view(r.host).substr(1)));
    if (host_ok && absl::StartsWith(method, r.method_prefix)) return &r;
  }
  return nullptr;
}

grpc::ServerGenericBidiReactor* Gateway::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  Caller caller;
  if (grpc::Status st = Authenticate(*ctx, &caller); !st.ok()) {
    counters_.unauthenticated.fetch_add(1, std::memory_order_relaxed);
    return new Reject(st);
  }
  const std::string& client = caller.client;
  const std::string host = AuthorityHost(ctx->host());
  const Route* route = FindRoute(host, ctx->method());
  if (route == nullptr) {
    counters_.no_route.fetch_add(1, std::memory_order_relaxed);
    return new Reject(grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat("gateway: no route for host \"", host, "\" and method ",
                     ctx->method())));
  }
  for (const std::string& scope : route->required_scopes) {
    const auto& have = caller.token.scopes;
    if (std::find(have.begin(), have.end(), scope) == have.end()) {
      counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
      log_(absl::StrCat("gateway: PERMISSION_DENIED ", ctx->method(),
                        " for client ", client, ": ",
                        caller.has_token ? "the token lacks scope "
                                         : "no token, so no scope ",
                        scope, " (route at line ", route->line, ")"));
      return new Reject(
          grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                       "gateway: the caller's credentials do not allow this "
                       "method"));
    }
  }
  switch (limits_.Admit(client, absl::Now())) {
    case ClientLimits::Verdict::kRateLimited:
      counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
      return new Reject(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: client ", client, " is over its rate of ",
                       config_.limits.calls_per_second_per_client,
                       " calls per second")));
    case ClientLimits::Verdict::kTooManyStreams:
      counters_.stream_limited.fetch_add(1, std::memory_order_relaxed);
      return new Reject(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: client ", client, " already has ",
                       config_.limits.max_streams_per_client,
                       " calls open (the limit)")));
    case ClientLimits::Verdict::kAdmit:
      break;
  }
  return new Call(this, ctx, destinations_.at(route->destination).stub.get(),
                  caller);
}

GatewayStats Gateway::stats() const {
  GatewayStats s;
  s.calls = counters_.calls.load();
  s.calls_ok = counters_.calls_ok.load();
  s.unauthenticated = counters_.unauthenticated.load();
  s.forbidden = counters_.forbidden.load();
  s.no_route = counters_.no_route.load();
  s.rate_limited = counters_.rate_limited.load();
  s.stream_limited = counters_.stream_limited.load();
  s.message_too_large = counters_.message_too_large.load();
  s.cancelled = counters_.cancelled.load();
  return s;
}

std::string Gateway::StatsLine() const {
  const GatewayStats s = stats();
  return absl::StrCat("calls=", s.calls, " ok=", s.calls_ok,
                      " unauthenticated=", s.unauthenticated,
                      " forbidden=", s.forbidden,
                      " no_route=", s.no_route,
                      " rate_limited=", s.rate_limited,
                      " stream_limited=", s.stream_limited,
                      " message_too_large=", s.message_too_large,
                      " cancelled=", s.cancelled);
}

}  // namespace gateway
}  // namespace mesh
