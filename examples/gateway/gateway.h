// File: examples/gateway/gateway.h
//
// An ingress gateway on the public mesh API: a gRPC generic service that
// takes any call from outside the mesh, authenticates the caller (API key),
// applies the per-client limits, picks a mesh hostname by the call's
// :authority and method (GatewayConfig::routes), and proxies the call over a
// mesh channel, so it gets locality, failover and mTLS inside the mesh.
// Unary and every kind of streaming call are proxied alike, as a stream of
// opaque messages each way (no generated stubs), with deadline, metadata and
// cancellation carried across both ways. docs/gateway.md.
//
// Statuses the gateway itself answers with:
//   UNAUTHENTICATED     no or unknown x-api-key, no or invalid bearer token
//                       (the reason is logged, never sent);
//   PERMISSION_DENIED   a route's requiredScopes not all in the token;
//   UNIMPLEMENTED       no route for the call's host and method;
//   RESOURCE_EXHAUSTED  a message over limits.maxMessageBytes, a client over
//                       maxStreamsPerClient or over its call rate.
// Everything else is the destination's own status (or the mesh's, e.g.
// UNAVAILABLE when no instance is reachable).

#ifndef EXAMPLES_GATEWAY_GATEWAY_H_
#define EXAMPLES_GATEWAY_GATEWAY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "examples/gateway/gateway_config.h"
#include "examples/gateway/jwt.h"

namespace mesh {
namespace gateway {

struct GatewayStats {
  uint64_t calls = 0;            // Calls that reached a destination.
  uint64_t calls_ok = 0;         // ... and ended OK.
  uint64_t unauthenticated = 0;  // Refused: no or bad API key or token.
  uint64_t forbidden = 0;        // Refused: the token lacks a scope.
  uint64_t no_route = 0;         // Refused: no route (UNIMPLEMENTED).
  uint64_t rate_limited = 0;     // Refused: over the client's call rate.
  uint64_t stream_limited = 0;   // Refused: over maxStreamsPerClient.
  uint64_t message_too_large = 0;  // Failed: a message over the limit.
  uint64_t cancelled = 0;        // Cancelled by the outside caller.
};

// Per-client admission: a token bucket for the call rate and a count of
// open calls. Clients are API-key names, or IP addresses without keys.
class ClientLimits {
 public:
  enum class Verdict { kAdmit, kRateLimited, kTooManyStreams };
  explicit ClientLimits(const Limits& limits);
  Verdict Admit(const std::string& client, absl::Time now);
  void Release(const std::string& client);

 private:
  struct State {
    double tokens = 0;
    absl::Time refilled = absl::InfinitePast();
    int open = 0;
  };
  const Limits limits_;
  const double burst_;
  absl::Mutex mu_;
  std::map<std::string, State> clients_ ABSL_GUARDED_BY(mu_);
};

// The proxy runs on the async generic API: `threads` completion queues, each
// polled by one thread of the gateway's, and each outside call proxied on
// one of them together with its call into the mesh (docs/gateway.md
// "How it is built").
//
//   Gateway gw(config, channel_for, jwt, log);
//   grpc::ServerBuilder b;  ... b.AddListeningPort(...);
//   gw.RegisterWith(&b, threads);
//   auto server = b.BuildAndStart();
//   gw.Start();
//   ...
//   server->Shutdown(deadline);  // running calls end by the deadline
//   gw.Stop();                   // waits for them, stops the threads
class Gateway final {
 public:
  // `channel_for(hostname)` gives the channel for a route's destination
  // (in the gateway binary: Mesh::CreateChannel); called once per
  // destination, here.
  using ChannelFactory =
      std::function<std::shared_ptr<grpc::Channel>(const std::string&)>;
  using Log = std::function<void(const std::string&)>;
  // `jwt` verifies bearer tokens; required when config.has_jwt. `log`
  // gets one line per refused credential (with the reason).
  Gateway(GatewayConfig config, const ChannelFactory& channel_for,
          std::unique_ptr<JwtVerifier> jwt, Log log);

  ~Gateway() { Stop(); }

  // Before BuildAndStart: registers the generic service and the queues.
  void RegisterWith(grpc::ServerBuilder* builder, int threads);
  // After BuildAndStart: starts accepting and proxying.
  void Start();
  // After server->Shutdown(): waits until every call has ended, then stops
  // the polling threads. Idempotent.
  void Stop();

  GatewayStats stats() const;
  // One line: "calls=N ok=N unauthenticated=N ...".
  std::string StatsLine() const;

 private:
  class Call;
  struct Poller {
    std::unique_ptr<grpc::ServerCompletionQueue> cq;
    std::thread thread;
    std::vector<Call*> deferred;  // Waiting for Call::Decide (its thread).
  };
  static constexpr int kAcceptsPerPoller = 16;
  struct Counters {
    std::atomic<uint64_t> calls{0}, calls_ok{0}, unauthenticated{0},
        forbidden{0}, no_route{0}, rate_limited{0}, stream_limited{0},
        message_too_large{0}, cancelled{0};
  };
  struct Destination {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<grpc::GenericStub> stub;
  };

  // Who is calling: the API key's client, the token's subject (with its
  // claims), or the IP address when no credential is asked for.
  struct Caller {
    std::string client;
    bool has_token = false;
    VerifiedToken token;
  };
  // OK and `caller`, or the status to refuse the call with.
  grpc::Status Authenticate(const grpc::ServerContextBase& ctx,
                            const std::string& method, Caller* caller) const;
  // The client name for an API key, "" if the key is unknown.
  std::string ApiKeyClient(const grpc::ServerContextBase& ctx) const;
  // Authentication, route, scopes and limits for a new outside call: OK
  // and the caller and the stub for its destination, or the status to
  // refuse it with.
  grpc::Status Admit(const grpc::ServerContextBase& ctx,
                     const std::string& method, const std::string& authority,
                     Caller* caller, grpc::GenericStub** stub);
  void CallStarted();
  void CallEnded();
  const Route* FindRoute(const std::string& host,
                         const std::string& method) const;

  const GatewayConfig config_;
  const std::unique_ptr<JwtVerifier> jwt_;
  const Log log_;
  std::map<std::string, Destination> destinations_;  // By hostname.
  ClientLimits limits_;
  Counters counters_;

  grpc::AsyncGenericService service_;
  std::vector<std::unique_ptr<Poller>> pollers_;
  std::atomic<bool> accepting_{false};
  std::atomic<int> live_{0};  // Call objects alive.
  absl::Mutex live_mu_;       // Only for Stop to wait for live_ == 0.
};

// "host" of an :authority ("api.example.test:8443" -> "api.example.test",
// "[::1]:8443" -> "::1"), lower case.
std::string AuthorityHost(const std::string& authority);
// The IP address in a grpc peer string ("ipv4:1.2.3.4:5" -> "1.2.3.4").
std::string PeerAddress(const std::string& peer);
// Whether request metadata `key` is forwarded into the mesh (hop-by-hop,
// gRPC-reserved, the API key and x-mesh-* are not; with jwt, neither are
// the claim headers nor, unless forwardToken, `authorization`).
bool ForwardRequestHeader(const std::string& key);
bool ForwardRequestHeader(const std::string& key, const GatewayConfig& c);
// Whether response metadata `key` is passed back to the outside caller.
bool ForwardResponseHeader(const std::string& key);

}  // namespace gateway
}  // namespace mesh

#endif  // EXAMPLES_GATEWAY_GATEWAY_H_
