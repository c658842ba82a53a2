#include "examples/gateway/gateway.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <deque>
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

namespace {

bool PrintableHeader(const std::string& v) {
  for (unsigned char c : v) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

// ------------------------------------------------------------------- Call

// One proxied call: the outside call ("down", on the async generic service)
// and the call into the mesh ("up", an async generic client call), both on
// the completion queue of one polling thread, so every reaction of both
// sides runs on that thread, one at a time, with no lock and no thread hop.
//
// Each direction is a short queue: at most two messages are read ahead of
// what the other side has taken (one being written, one waiting), so
// HTTP/2 flow control still pushes back on a fast sender. A generic proxy
// cannot know that a call is unary, but it can see that the caller sent its
// message and its half-close together, and that the destination sent its
// response and its status together: the gateway holds the first message of
// each direction until the poller has taken every event already there
// (Poller::deferred, then Decide). If the end came with it, the two go out
// as one batch (the request with its half-close and the call's initial
// metadata; the response with the status); if not, the message goes out on
// its own and the call streams as usual. The outside call is finished once
// the call into the mesh has its status and every response is written; the
// Call is deleted when no operation of either side is pending.
constexpr char kHealthPrefix[] = "/grpc.health.v1.Health/";

class Gateway::Call {
 public:
  Call(Gateway* gw, Poller* poller) : gw_(gw), poller_(poller) {
    for (int k = 0; k < kKinds; ++k) ops_[k] = {this, static_cast<Kind>(k)};
    gw_->CallStarted();
  }

  // Waits for the next outside call on the poller's queue.
  void Accept() {
    down_ctx_.AsyncNotifyWhenDone(&ops_[kDownDone]);
    ++pending_;  // kDownDone: delivered once the call is accepted.
    gw_->service_.RequestCall(&down_ctx_, &down_, poller_->cq.get(),
                              poller_->cq.get(), &ops_[kAccepted]);
    ++pending_;
  }

  // A completion of one of this call's operations (on the poller thread).
  static void Handle(void* tag, bool ok) {
    Op* op = static_cast<Op*>(tag);
    Call* call = op->call;
    --call->pending_;
    call->On(op->kind, ok);
    call->DeleteIfDone();
  }

  // The poller has taken every event that was already there: what was held
  // to see whether its end came with it goes out now (on the poller thread).
  static void Decide(Call* call) {
    call->deferred_ = false;
    --call->pending_;  // The hold taken by Defer.
    call->requests_decided_ = true;
    if (call->response_held_) call->responses_decided_ = true;
    if (!call->finished_down_) {
      if (call->up_ == nullptr) call->StartUp();
      call->ForwardRequests();
      call->ForwardResponses();
    }
    call->DeleteIfDone();
  }

 private:
  enum Kind {
    kAccepted, kDownDone, kDownRead, kDownWrite, kDownFinish,
    kUpStart, kUpRead, kUpWrite, kUpFinish, kKinds
  };
  struct Op {
    Call* call;
    Kind kind;
  };
  // A request read from the outside caller: a message, or its half-close.
  struct Request {
    grpc::ByteBuffer message;
    bool half_close = false;
  };

  ~Call() {
    if (admitted_) gw_->limits_.Release(client_);
    gw_->CallEnded();
  }

  void DeleteIfDone() {
    if (pending_ == 0) delete this;
  }

  void* Tag(Kind kind) {
    ++pending_;
    return &ops_[kind];
  }

  // Until Decide runs (the call stays alive for it).
  void Defer() {
    if (deferred_) return;
    deferred_ = true;
    ++pending_;
    poller_->deferred.push_back(this);
  }

  void On(Kind kind, bool ok) {
    if (health_ && kind != kAccepted) {
      OnHealth(kind, ok);
      return;
    }
    switch (kind) {
      case kAccepted:
        if (!ok) {  // The server is shutting down; kDownDone never comes.
          --pending_;
          return;
        }
        if (gw_->accepting_.load(std::memory_order_acquire)) {
          (new Call(gw_, poller_))->Accept();  // The next outside call.
        }
        Start();
        return;
      case kDownDone:
        if (down_ctx_.IsCancelled() && !finished_down_) {
          gw_->counters_.cancelled.fetch_add(1, std::memory_order_relaxed);
          cancelled_ = true;
          if (up_ != nullptr) up_ctx_.TryCancel();
        }
        return;
      case kDownRead:  // A request message, or the outside half-close.
        down_reading_ = false;
        if (!ok) {
          requests_.push_back(Request{{}, true});
          requests_closed_ = true;
        } else if (TooLarge(read_request_, "request")) {
          requests_closed_ = true;  // No more reads; the call is failing.
        } else {
          requests_.push_back(Request{read_request_, false});
          read_request_.Clear();
        }
        // A half-close (with its message, if any) is the whole request:
        // nothing to wait for.
        if (up_ == nullptr && requests_closed_) StartUp();
        ForwardRequests();
        return;
      case kUpStart:
        up_started_ = true;
        ForwardRequests();
        return;
      case kUpWrite:
        up_writing_ = false;
        if (!ok) {  // The call into the mesh has ended: kUpFinish comes.
          requests_.clear();
          requests_closed_ = true;
          return;
        }
        ForwardRequests();
        return;
      case kUpRead:  // A response message, or the end of responses.
        up_reading_ = false;
        if (!ok) {
          responses_ended_ = true;
        } else if (TooLarge(read_response_, "response")) {
          responses_ended_ = true;
          responses_.clear();
        } else {
          responses_.push_back(read_response_);
          read_response_.Clear();
        }
        ForwardResponses();
        return;
      case kDownWrite:
        down_writing_ = false;
        if (!ok) {  // The outside caller is gone.
          up_ctx_.TryCancel();
          responses_.clear();
          responses_ended_ = true;
        }
        ForwardResponses();
        return;
      case kUpFinish:
        up_finished_ = true;
        ForwardResponses();
        return;
      case kDownFinish:
      case kKinds:
        return;
    }
  }

  // The accepted outside call: refused, or proxied.
  void Start() {
    if (absl::StartsWith(down_ctx_.method(), kHealthPrefix)) {
      health_ = true;
      down_.Read(&read_request_, Tag(kDownRead));
      return;
    }
    grpc::Status refused = gw_->Admit(down_ctx_, down_ctx_.method(),
                                      down_ctx_.host(), &caller_, &stub_);
    if (!refused.ok()) {
      finished_down_ = true;
      down_.Finish(refused, Tag(kDownFinish));
      return;
    }
    admitted_ = true;
    client_ = caller_.client;
    gw_->counters_.calls.fetch_add(1, std::memory_order_relaxed);
    up_ctx_.set_deadline(down_ctx_.deadline());
    for (const auto& [k, v] : down_ctx_.client_metadata()) {
      const std::string key(k.data(), k.size());
      if (ForwardRequestHeader(key, gw_->config_)) {
        up_ctx_.AddMetadata(key, std::string(v.data(), v.size()));
      }
    }
    if (caller_.has_token) {
      for (const auto& [claim, header] : gw_->config_.jwt.claim_headers) {
        auto it = caller_.token.claims.find(claim);
        // Only values gRPC accepts in a text header (printable ASCII);
        // another would fail the call inside gRPC.
        if (it != caller_.token.claims.end() && PrintableHeader(it->second)) {
          up_ctx_.AddMetadata(header, it->second);
        }
      }
    }
    // Who called, for the destination's logs and decisions; x-mesh-* from
    // outside is dropped above, so these cannot be forged.
    up_ctx_.AddMetadata("x-mesh-gateway-client", client_);
    up_ctx_.AddMetadata("x-forwarded-for", PeerAddress(down_ctx_.peer()));
    // The call into the mesh starts with the first request (or at Decide,
    // for a caller that sends nothing until it hears from the server).
    ForwardRequests();  // Starts the first read.
    Defer();
  }

  // Starts the call into the mesh. With a request in hand its initial
  // metadata waits for it (corked: one batch with the message); without
  // one (the caller waits to hear first), it goes out on its own.
  void StartUp() {
    if (cancelled_ || !own_status_.ok()) {  // Nothing to start it for.
      up_finished_ = true;
      responses_ended_ = true;
      if (own_status_.ok()) up_status_ = grpc::Status::CANCELLED;
      requests_.clear();
      ForwardResponses();
      return;
    }
    const bool corked = !requests_.empty();
    up_ctx_.set_initial_metadata_corked(corked);
    up_ = stub_->PrepareCall(&up_ctx_, down_ctx_.method(), poller_->cq.get());
    if (corked) {
      up_->StartCall(nullptr);  // Corked: no operation, no completion.
      up_started_ = true;
      ForwardRequests();  // The first batch: metadata and the request.
    } else {
      up_->StartCall(Tag(kUpStart));
    }
    up_->Finish(&up_status_, Tag(kUpFinish));
    ForwardResponses();  // Starts the first read.
  }

  // Request flow: writes what was read into the mesh (a message with the
  // half-close behind it as one), and reads on while fewer than two
  // requests are held.
  void ForwardRequests() {
    if (up_started_ && !up_writing_ && !requests_.empty() &&
        (requests_decided_ || requests_closed_)) {
      Request r = std::move(requests_.front());
      requests_.pop_front();
      up_writing_ = true;
      if (r.half_close) {
        up_->WritesDone(Tag(kUpWrite));
      } else if (!requests_.empty() && requests_.front().half_close) {
        requests_.pop_front();
        up_->Write(r.message, grpc::WriteOptions().set_last_message(),
                   Tag(kUpWrite));
      } else {
        up_->Write(r.message, Tag(kUpWrite));
      }
    }
    const size_t held = requests_.size() + (up_writing_ ? 1 : 0);
    if (!down_reading_ && !requests_closed_ && held < 2 && !finished_down_) {
      down_reading_ = true;
      down_.Read(&read_request_, Tag(kDownRead));
    }
  }

  // Response flow: writes what the mesh answered to the outside caller (the
  // last message with the status as one), reads on while fewer than two
  // responses are held, and finishes the outside call at the end.
  void ForwardResponses() {
    if (finished_down_) return;
    if (!down_writing_ && !responses_.empty()) {
      const bool last = responses_.size() == 1 && responses_ended_;
      if (last && up_finished_) {
        grpc::ByteBuffer m = std::move(responses_.front());
        responses_.pop_front();
        FinishDown(&m);
        return;
      }
      // The first response waits for Decide, in case its status is behind
      // it; later ones go at once; the last waits for the status.
      if (!last && (responses_decided_ || responses_.size() > 1 ||
                    initial_metadata_sent_)) {  // (Sent: not the first.)
        ForwardInitialMetadata();  // Goes with the first message.
        down_writing_ = true;
        down_.Write(responses_.front(), Tag(kDownWrite));
        responses_.pop_front();
      }
    }
    if (responses_.empty() && !down_writing_ && responses_ended_ &&
        up_finished_) {
      FinishDown(nullptr);
      return;
    }
    const size_t held = responses_.size() + (down_writing_ ? 1 : 0);
    if (up_ != nullptr && !up_reading_ && !responses_ended_ && held < 2) {
      up_reading_ = true;
      up_->Read(&read_response_, Tag(kUpRead));
    }
    if (!responses_.empty() && !responses_decided_ && !response_held_) {
      response_held_ = true;
      Defer();
    }
  }

  // grpc.health.v1.Health, answered by the gateway itself without a key
  // (for load balancers in front of it): SERVING for the server as a whole
  // (service ""), NOT_FOUND for any other name. Check answers once; Watch
  // sends SERVING and stays open until the caller cancels (or the server
  // shuts down). Served here rather than by gRPC's default health service,
  // which runs on the callback API: its polling threads would take the
  // proxy's network events too and hand them over, a context switch each.
  void OnHealth(Kind kind, bool ok) {
    switch (kind) {
      case kDownRead: {
        std::string service;
        if (ok && !HealthRequestService(read_request_, &service)) {
          Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "gateway: not a HealthCheckRequest"));
        } else if (!service.empty()) {
          Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                              "gateway: only the server as a whole (service "
                              "\"\") has a health status here"));
        } else if (down_ctx_.method() == std::string(kHealthPrefix) + "Check") {
          finished_down_ = true;
          down_.WriteAndFinish(Serving(), grpc::WriteOptions(),
                               grpc::Status::OK, Tag(kDownFinish));
        } else if (down_ctx_.method() == std::string(kHealthPrefix) + "Watch") {
          down_.Write(Serving(), Tag(kDownWrite));  // Then held open.
        } else {
          Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              "gateway: unknown health method"));
        }
        return;
      }
      case kDownDone:  // Cancelled, or ended: a held Watch ends here.
        Finish(grpc::Status::CANCELLED);
        return;
      default:
        return;
    }
  }

  void Finish(const grpc::Status& status) {
    if (finished_down_) return;
    finished_down_ = true;
    down_.Finish(status, Tag(kDownFinish));
  }

  static grpc::ByteBuffer Serving() {
    static const char kServing[] = {0x08, 0x01};  // status: SERVING
    grpc::Slice slice(kServing, sizeof(kServing));
    return grpc::ByteBuffer(&slice, 1);
  }

  // HealthCheckRequest {string service = 1;}: its service name.
  static bool HealthRequestService(const grpc::ByteBuffer& m,
                                   std::string* service) {
    std::vector<grpc::Slice> slices;
    if (!m.Dump(&slices).ok()) return false;
    std::string b;
    for (const grpc::Slice& sl : slices) {
      b.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    service->clear();
    if (b.empty()) return true;
    // One field: tag 0x0a, a one-byte length (names under 128 bytes), bytes.
    const size_t len = b.size() >= 2 ? static_cast<unsigned char>(b[1]) : 0;
    if (b[0] != 0x0a || len >= 128 || b.size() != 2 + len) return false;
    *service = b.substr(2);
    return true;
  }

  // Fails the call if `m` is over the message limit: the destination's call
  // is cancelled and the outside caller gets RESOURCE_EXHAUSTED.
  bool TooLarge(const grpc::ByteBuffer& m, const char* what) {
    const int64_t max = gw_->config_.limits.max_message_bytes;
    if (static_cast<int64_t>(m.Length()) <= max) return false;
    gw_->counters_.message_too_large.fetch_add(1, std::memory_order_relaxed);
    if (own_status_.ok()) {
      own_status_ = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: ", what, " message of ", m.Length(),
                       " bytes is over the limit of ", max, " bytes"));
    }
    requests_.clear();
    if (up_ != nullptr) {
      up_ctx_.TryCancel();  // kUpFinish then finishes the outside call.
    } else {
      StartUp();  // Not started: finishes the outside call now.
    }
    return true;
  }

  // Gives the outside call the destination's initial metadata, once; it
  // goes out with the first message (or the status).
  void ForwardInitialMetadata() {
    if (initial_metadata_sent_) return;
    initial_metadata_sent_ = true;
    for (const auto& [k, v] : up_ctx_.GetServerInitialMetadata()) {
      const std::string key(k.data(), k.size());
      if (ForwardResponseHeader(key)) {
        down_ctx_.AddInitialMetadata(key, std::string(v.data(), v.size()));
      }
    }
  }

  // The outside call gets the destination's status (or the gateway's own
  // error) and trailing metadata, with `last` (the last response) if any.
  void FinishDown(const grpc::ByteBuffer* last) {
    finished_down_ = true;
    if (up_ != nullptr) {
      ForwardInitialMetadata();
      for (const auto& [k, v] : up_ctx_.GetServerTrailingMetadata()) {
        const std::string key(k.data(), k.size());
        if (ForwardResponseHeader(key)) {
          down_ctx_.AddTrailingMetadata(key, std::string(v.data(), v.size()));
        }
      }
    }
    const grpc::Status status = own_status_.ok() ? up_status_ : own_status_;
    if (status.ok()) {
      gw_->counters_.calls_ok.fetch_add(1, std::memory_order_relaxed);
    }
    if (last != nullptr && own_status_.ok()) {
      down_.WriteAndFinish(*last, grpc::WriteOptions(), status,
                           Tag(kDownFinish));
    } else {
      down_.Finish(status, Tag(kDownFinish));
    }
  }

  Gateway* const gw_;
  Poller* const poller_;
  Op ops_[kKinds];
  int pending_ = 0;  // Operations started and not completed, and Defer.

  grpc::GenericServerContext down_ctx_;
  grpc::GenericServerAsyncReaderWriter down_{&down_ctx_};
  Caller caller_;
  std::string client_;
  bool admitted_ = false;
  grpc::GenericStub* stub_ = nullptr;

  grpc::ClientContext up_ctx_;  // Outlives up_ (declared before it).
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> up_;
  grpc::Status up_status_;
  grpc::Status own_status_;  // The gateway's own error (message limit).

  // Outside -> mesh.
  grpc::ByteBuffer read_request_;  // The read in flight.
  std::deque<Request> requests_;   // Read, not yet written.
  bool down_reading_ = false;
  bool requests_closed_ = false;  // Half-close read, or no more reads.
  bool up_started_ = false;
  bool up_writing_ = false;
  // Mesh -> outside.
  grpc::ByteBuffer read_response_;
  std::deque<grpc::ByteBuffer> responses_;
  bool up_reading_ = false;
  bool responses_ended_ = false;
  bool down_writing_ = false;
  bool initial_metadata_sent_ = false;
  bool up_finished_ = false;
  bool finished_down_ = false;

  bool deferred_ = false;           // In poller_->deferred.
  bool requests_decided_ = false;   // The first request is not held.
  bool response_held_ = false;      // The first response waits for Decide.
  bool responses_decided_ = false;  // ... and no longer.
  bool cancelled_ = false;  // The outside caller cancelled.
  bool health_ = false;  // A grpc.health.v1.Health call (OnHealth).
};

// ---------------------------------------------------------------- Gateway

Gateway::Gateway(GatewayConfig config, const ChannelFactory& channel_for,
                 std::unique_ptr<JwtVerifier> jwt, Log log)
    : config_(std::move(config)),
      jwt_(std::move(jwt)),
      log_(std::move(log)),
      limits_(config_.limits) {
  for (const Route& r : config_.routes) {
    Destination& d = destinations_[r.destination];
    if (d.channel == nullptr) {
      d.channel = channel_for(r.destination);
      d.stub = std::make_unique<grpc::GenericStub>(d.channel);
    }
  }
}

void Gateway::RegisterWith(grpc::ServerBuilder* builder, int threads) {
  builder->RegisterAsyncGenericService(&service_);
  for (int i = 0; i < std::max(1, threads); ++i) {
    auto p = std::make_unique<Poller>();
    p->cq = builder->AddCompletionQueue();
    pollers_.push_back(std::move(p));
  }
}

void Gateway::Start() {
  accepting_.store(true, std::memory_order_release);
  for (auto& p : pollers_) {
    // A few outside calls may be accepted at once on each queue.
    for (int i = 0; i < kAcceptsPerPoller; ++i) (new Call(this, p.get()))->Accept();
    Poller* poller = p.get();
    p->thread = std::thread([poller] {
      void* tag;
      bool ok;
      for (;;) {
        if (poller->deferred.empty()) {
          if (!poller->cq->Next(&tag, &ok)) return;
          Call::Handle(tag, ok);
          continue;
        }
        // Calls wait to see whether an end came with their first message:
        // take what is already there (a poll that does not block), then
        // let them decide.
        switch (poller->cq->AsyncNext(&tag, &ok,
                                      gpr_time_0(GPR_CLOCK_MONOTONIC))) {
          case grpc::CompletionQueue::GOT_EVENT:
            Call::Handle(tag, ok);
            break;
          case grpc::CompletionQueue::TIMEOUT: {
            std::vector<Call*> decide;
            decide.swap(poller->deferred);
            for (Call* c : decide) Call::Decide(c);
            break;
          }
          case grpc::CompletionQueue::SHUTDOWN:
            return;
        }
      }
    });
  }
}

void Gateway::Stop() {
  accepting_.store(false, std::memory_order_release);
  {
    // Every call ends once the server is shut down (its calls cancelled at
    // the shutdown deadline, their calls into the mesh with them).
    absl::MutexLock lock(&live_mu_);
    live_mu_.Await(absl::Condition(
        +[](std::atomic<int>* live) { return live->load() == 0; }, &live_));
  }
  for (auto& p : pollers_) p->cq->Shutdown();
  for (auto& p : pollers_) {
    if (p->thread.joinable()) p->thread.join();
  }
}

void Gateway::CallStarted() { live_.fetch_add(1, std::memory_order_relaxed); }

void Gateway::CallEnded() {
  if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last one: Stop's Await looks at live_ again when the lock is let go.
    absl::MutexLock lock(&live_mu_);
  }
}

grpc::Status Gateway::Authenticate(const grpc::ServerContextBase& ctx,
                                   const std::string& method,
                                   Caller* caller) const {
  const auto& md = ctx.client_metadata();
  const auto auth = md.find("authorization");
  if (jwt_ != nullptr && auth != md.end()) {
    absl::string_view value(auth->second.data(), auth->second.size());
    std::string why;
    if (!absl::StartsWithIgnoreCase(value, "bearer ")) {
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
    log_(absl::StrCat("gateway: UNAUTHENTICATED ", method, " from ",
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
  log_(absl::StrCat("gateway: UNAUTHENTICATED ", method, " from ",
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

std::string Gateway::ApiKeyClient(const grpc::ServerContextBase& ctx) const {
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

grpc::Status Gateway::Admit(const grpc::ServerContextBase& ctx,
                            const std::string& method,
                            const std::string& authority, Caller* caller,
                            grpc::GenericStub** stub) {
  if (grpc::Status st = Authenticate(ctx, method, caller); !st.ok()) {
    counters_.unauthenticated.fetch_add(1, std::memory_order_relaxed);
    return st;
  }
  const std::string& client = caller->client;
  const std::string host = AuthorityHost(authority);
  const Route* route = FindRoute(host, method);
  if (route == nullptr) {
    counters_.no_route.fetch_add(1, std::memory_order_relaxed);
    return grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat("gateway: no route for host \"", host, "\" and method ",
                     method));
  }
  for (const std::string& scope : route->required_scopes) {
    const auto& have = caller->token.scopes;
    if (std::find(have.begin(), have.end(), scope) == have.end()) {
      counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
      log_(absl::StrCat("gateway: PERMISSION_DENIED ", method,
                        " for client ", client, ": ",
                        caller->has_token ? "the token lacks scope "
                                         : "no token, so no scope ",
                        scope, " (route at line ", route->line, ")"));
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "gateway: the caller's credentials do not allow "
                          "this method");
    }
  }
  switch (limits_.Admit(client, absl::Now())) {
    case ClientLimits::Verdict::kRateLimited:
      counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: client ", client, " is over its rate of ",
                       config_.limits.calls_per_second_per_client,
                       " calls per second"));
    case ClientLimits::Verdict::kTooManyStreams:
      counters_.stream_limited.fetch_add(1, std::memory_order_relaxed);
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gateway: client ", client, " already has ",
                       config_.limits.max_streams_per_client,
                       " calls open (the limit)"));
    case ClientLimits::Verdict::kAdmit:
      break;
  }
  *stub = destinations_.at(route->destination).stub.get();
  return grpc::Status::OK;
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
