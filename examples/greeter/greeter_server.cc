// greeter_server: one instance of the example Greeter service, served through
// the mesh (gRPC's xDS server, configured by the mesh control plane).
//
//   greeter_server --config=mesh.yaml --listen=127.0.1.1:50051
//       --locality=us-east/us-east-a/cluster-1 --name=greeter-c1
//       --cert=greeter.pem --key=greeter.key --bundle=ca.pem
//       [--service=greeter]
//
// (or --plaintext instead of the identity files, for local development).
// --etcd=HOST:PORT[,...] reads endpoint sets from etcd too (docs/config.md,
// "etcd"): the server must see its own endpoint to know what it serves.
// --register (with --etcd) registers it there as an instance of --service
// (docs/config.md, "Registration"; --register_ttl=SECONDS, default 10,
// --advertise=IP for a wildcard --listen); on SIGTERM it then drains
// (Mesh::Drain: DRAINING, --drain_ms (default 1000), shutdown, gone).
// --admin=127.0.0.1:PORT serves the mesh admin endpoint.
// --service is the service this process is (MeshOptions::service_name);
// by default, the one whose endpoint --listen is in the config. The server
// enforces the policy of the service that owns --listen either way, and
// denies every call if the two disagree (docs/security.md).
//
// SIGUSR1 marks it NOT_SERVING (Mesh::SetServing(false): its registered
// instances go UNHEALTHY, and grpc.health.v1 answers NOT_SERVING), SIGUSR2
// SERVING again.
//
// Runs until SIGTERM or SIGINT.

#include <signal.h>

#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "greeter_service.h"
#include "mesh/mesh.h"
#include "security_flags.h"

namespace {

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, listen, locality, name = "greeter", service, etcd;
  std::string register_ttl, drain_ms, advertise;
  mesh::MeshOptions options;
  for (int i = 1; i < argc; ++i) {
    if (!mesh::examples::SecurityFlag(argv[i], &options) &&
        !Flag(argv[i], "--config=", &config) &&
        !Flag(argv[i], "--listen=", &listen) &&
        !Flag(argv[i], "--locality=", &locality) &&
        !Flag(argv[i], "--name=", &name) &&
        !Flag(argv[i], "--service=", &service) &&
        !Flag(argv[i], "--etcd=", &etcd) &&
        !Flag(argv[i], "--register_ttl=", &register_ttl) &&
        !Flag(argv[i], "--drain_ms=", &drain_ms) &&
        !Flag(argv[i], "--advertise=", &advertise) &&
        !Flag(argv[i], "--admin=", &options.admin_address) &&
        std::string(argv[i]) != "--register") {
      std::cerr << "unknown flag " << argv[i] << "\nusage: greeter_server "
                << "--config=FILE --listen=IP:PORT "
                   "--locality=REGION/ZONE/CLUSTER [--name=NAME] [--service=NAME] "
                   "[--etcd=HOST:PORT[,...]] [--register [--register_ttl=S] "
                   "[--advertise=IP] [--drain_ms=MS]] "
                << mesh::examples::kSecurityUsage << "\n";
      return 2;
    }
  }
  if (config.empty() || listen.empty()) {
    std::cerr << "greeter_server: --config and --listen are required\n";
    return 2;
  }
  if (service.empty()) {
    absl::StatusOr<std::string> owner = mesh::ServiceAt(config, listen);
    if (!owner.ok()) {
      std::cerr << "greeter_server: no --service given, and the config does "
                   "not say which service --listen="
                << listen << " belongs to: " << owner.status().message()
                << (etcd.empty() ? "" : " (endpoints in etcd are not "
                                        "looked at: give --service)")
                << "\n";
      return 2;
    }
    service = *owner;
  }
  std::vector<std::string> loc = absl::StrSplit(locality, '/');
  loc.resize(3);
  // Block SIGTERM/SIGINT before any thread starts; sigwait takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  for (int i = 1; i < argc; ++i) {
    options.registration.enabled |= std::string(argv[i]) == "--register";
  }
  int64_t ttl_s = 10, drain = 1000;
  if ((!register_ttl.empty() && !absl::SimpleAtoi(register_ttl, &ttl_s)) ||
      (!drain_ms.empty() && !absl::SimpleAtoi(drain_ms, &drain))) {
    std::cerr << "greeter_server: --register_ttl and --drain_ms take numbers\n";
    return 2;
  }
  options.registration.ttl = absl::Seconds(ttl_s);
  options.registration.advertise_address = advertise;
  options.config_path = config;
  options.etcd.endpoints = absl::StrSplit(etcd, ',', absl::SkipEmpty());
  options.service_name = service;
  options.locality = {loc[0], loc[1], loc[2]};
  auto m = mesh::Mesh::Create(options);
  if (!m.ok()) {
    std::cerr << "greeter_server: " << m.status() << "\n";
    return 1;
  }
  mesh::examples::GreeterService greeter(name, locality);
  // Answer grpc.health.v1 checks (a service's `healthCheck` in the config).
  grpc::EnableDefaultHealthCheckService(true);
  auto builder = (*m)->NewServerBuilder();
  builder->AddListeningPort(listen, (*m)->ServerCredentials());
  builder->RegisterService(&greeter);
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  if (server == nullptr) {
    std::cerr << "greeter_server: cannot listen on " << listen << "\n";
    return 1;
  }
  std::cout << "greeter_server " << name << " (" << service << ", "
            << locality << ") listening on " << listen << std::endl;
  int sig = 0;
  while (sigwait(&set, &sig) == 0 && (sig == SIGUSR1 || sig == SIGUSR2)) {
    const bool serving = sig == SIGUSR2;
    (*m)->SetServing(serving);
    server->GetHealthCheckService()->SetServingStatus(serving);
    std::cout << "greeter_server " << name
              << (serving ? " SERVING" : " NOT_SERVING") << std::endl;
  }
  if (options.registration.enabled) {
    std::cout << "greeter_server " << name << " draining" << std::endl;
    mesh::DrainOptions d;
    d.delay = absl::Milliseconds(drain);
    (*m)->Drain(server.get(), d);
  } else {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(500));
  }
  std::cout << "greeter_server " << name << " stopped" << std::endl;
  return 0;
}
