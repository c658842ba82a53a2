// gateway: admits calls from outside the mesh and forwards each to a mesh
// hostname, with the mesh's locality, failover and mTLS (docs/gateway.md).
//
//   gateway --gateway_config=gateway.yaml --config=mesh.yaml
//       --locality=us-east/us-east-a/cluster-1
//       --cert=gateway.pem --key=gateway.key --bundle=ca.pem
//
// --service=NAME   its mesh service name (default "gateway"; with mTLS its
//                  certificate must carry that workload's SPIFFE ID)
// --admin=ADDRESS  the mesh admin endpoint (status page, /metrics)
// --stats_interval_s=N  print the gateway's counters every N seconds
//                  (default 0: only at exit)
// --threads=N      threads that poll and proxy (default 1; docs/gateway.md)
//
// Prints "gateway listening on HOST:PORT" once it serves. Stops on
// SIGTERM/SIGINT, letting running calls finish for up to 5 seconds.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "examples/gateway/gateway.h"
#include "examples/greeter/security_flags.h"
#include "mesh/mesh.h"

namespace {

std::atomic<bool> g_stop{false};

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string gateway_config, config, locality, service = "gateway";
  std::string stats_s = "0", threads_s;
  mesh::MeshOptions options;
  for (int i = 1; i < argc; ++i) {
    if (mesh::examples::SecurityFlag(argv[i], &options)) continue;
    if (!Flag(argv[i], "--gateway_config=", &gateway_config) &&
        !Flag(argv[i], "--config=", &config) &&
        !Flag(argv[i], "--locality=", &locality) &&
        !Flag(argv[i], "--service=", &service) &&
        !Flag(argv[i], "--admin=", &options.admin_address) &&
        !Flag(argv[i], "--stats_interval_s=", &stats_s) &&
        !Flag(argv[i], "--threads=", &threads_s)) {
      std::cerr << "gateway: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  int stats_interval_s = 0;
  int threads = 1;
  if (gateway_config.empty() || config.empty() ||
      !absl::SimpleAtoi(stats_s, &stats_interval_s) || stats_interval_s < 0 ||
      (!threads_s.empty() &&
       (!absl::SimpleAtoi(threads_s, &threads) || threads < 1 ||
        threads > 256))) {
    std::cerr << "usage: gateway --gateway_config=FILE --config=MESH_FILE "
                 "[--locality=R/Z/C] [--service=NAME] [--admin=ADDRESS] "
                 "[--stats_interval_s=N] [--threads=N (1-256)] "
              << mesh::examples::kSecurityUsage << "\n";
    return 2;
  }
  // Debian's abseil checks every Mutex acquisition for lock-order cycles
  // (gRPC's locks included): about 14 % of the gateway's instructions per
  // proxied call (docs/benchmarks.md). The gateway's own process, so its
  // choice; the mesh library leaves the setting to the application.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto gw_config = mesh::gateway::LoadGatewayConfig(gateway_config);
  if (!gw_config.ok()) {
    std::cerr << "gateway: " << gw_config.status().message() << "\n";
    return 1;
  }
  std::shared_ptr<grpc::ServerCredentials> outside;
  if (gw_config->plaintext) {
    outside = grpc::InsecureServerCredentials();
  } else {
    grpc::SslServerCredentialsOptions ssl;
    auto cert = mesh::gateway::ReadFile(gw_config->tls_certificate);
    auto key = mesh::gateway::ReadFile(gw_config->tls_private_key);
    if (!cert.ok() || !key.ok()) {
      std::cerr << "gateway: "
                << (cert.ok() ? key.status() : cert.status()).message() << "\n";
      return 1;
    }
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    outside = grpc::SslServerCredentials(ssl);
  }

  signal(SIGTERM, [](int) { g_stop = true; });
  signal(SIGINT, [](int) { g_stop = true; });
  std::vector<std::string> loc = absl::StrSplit(locality, '/');
  loc.resize(3);
  options.config_path = config;
  options.service_name = service;
  options.locality = {loc[0], loc[1], loc[2]};
  auto m = mesh::Mesh::Create(options);
  if (!m.ok()) {
    std::cerr << "gateway: " << m.status() << "\n";
    return 1;
  }
  std::cout << "gateway: mesh security: " << (*m)->GetStatus().security
            << std::endl;
  if (!(*m)->admin_address().empty()) {
    std::cout << "gateway: admin endpoint http://" << (*m)->admin_address()
              << "/" << std::endl;
  }

  // Responses come from mesh workloads (mTLS, authorised); the gateway
  // checks their size itself so that a large one is counted (see Gateway).
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto log = [](const std::string& line) {
    std::cout << (line + "\n") << std::flush;
  };
  std::unique_ptr<mesh::gateway::JwtVerifier> jwt;
  if (gw_config->has_jwt) {
    auto v = mesh::gateway::JwtVerifier::Create(gw_config->jwt, log);
    if (!v.ok()) {
      std::cerr << "gateway: jwt: " << v.status().message() << "\n";
      return 1;
    }
    jwt = *std::move(v);
    jwt->StartWatching();
  }
  mesh::gateway::Gateway gateway(
      *gw_config,
      [&](const std::string& hostname) {
        return (*m)->CreateChannel(hostname, args);
      },
      std::move(jwt), log);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(gw_config->listen, outside, &port);
  gateway.RegisterWith(&builder, threads);
  // gRPC refuses a larger request before reading it, with
  // RESOURCE_EXHAUSTED; one byte of slack lets the gateway see (and count)
  // a message just over the limit.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(gw_config->limits.max_message_bytes + 1));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "gateway: cannot listen on " << gw_config->listen << "\n";
    return 1;
  }
  const std::string host =
      gw_config->listen.substr(0, gw_config->listen.rfind(':'));
  std::cout << "gateway listening on " << host << ":" << port << " ("
            << (gw_config->plaintext ? "plaintext" : "TLS") << ", "
            << gw_config->routes.size() << " routes, "
            << (!gw_config->api_keys.empty() && gw_config->has_jwt
                    ? "API keys and JWT"
                : gw_config->has_jwt        ? "JWT"
                : gw_config->api_keys.empty() ? "no authentication"
                                              : "API keys")
            << ")" << std::endl;
  gateway.Start();
  auto last = std::chrono::steady_clock::now();
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stats_interval_s > 0 &&
        std::chrono::steady_clock::now() - last >=
            std::chrono::seconds(stats_interval_s)) {
      last = std::chrono::steady_clock::now();
      std::cout << "gateway stats: " << gateway.StatsLine() << std::endl;
    }
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  gateway.Stop();
  server->Wait();
  std::cout << "gateway stats: " << gateway.StatsLine() << std::endl;
  return 0;
}
