// mtls_cost: one client process of the mTLS-vs-plaintext benchmark
// (bench/mtls_cost.sh runs it in interleaved rounds, one process per mode,
// because the security mode is fixed per process).
//
//   mtls_cost --mode=mtls|plaintext --port=PORT --certs=DIR
//       [--calls=N] [--inflight=K] [--handshakes=N] [--payload=BYTES]
//
// Calls greeter.mesh.internal (a greeter_server on 127.0.0.1:PORT, started
// by the script in the same mode) through a mesh channel. With --calls:
// a closed loop with K calls in flight; prints client CPU per call and
// latency percentiles. With --handshakes: N new connections (each a fresh
// channel with its own subchannel pool, one call on it); prints wall and
// client CPU time per connection. In mtls mode the identity is
// DIR/bench-client.{pem,key} and the bundle DIR/ca.pem (meshctl dev-certs).

#include <stdio.h>

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "closed_loop.h"
#include "mesh/mesh.h"

namespace {

using mesh::bench::Clock;
using mesh::bench::CpuSeconds;
using mesh::bench::Greeter;
using mesh::bench::HelloReply;
using mesh::bench::HelloRequest;

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, port_s, certs, calls_s = "0", inflight_s = "1",
                                   handshakes_s = "0", payload_s = "1024";
  for (int i = 1; i < argc; ++i) {
    if (!Flag(argv[i], "--mode=", &mode) && !Flag(argv[i], "--port=", &port_s) &&
        !Flag(argv[i], "--certs=", &certs) &&
        !Flag(argv[i], "--calls=", &calls_s) &&
        !Flag(argv[i], "--inflight=", &inflight_s) &&
        !Flag(argv[i], "--handshakes=", &handshakes_s) &&
        !Flag(argv[i], "--payload=", &payload_s)) {
      std::cerr << "mtls_cost: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  int port = 0, calls = 0, inflight = 0, handshakes = 0, payload = 0;
  if ((mode != "mtls" && mode != "plaintext") ||
      !absl::SimpleAtoi(port_s, &port) || port <= 0 ||
      !absl::SimpleAtoi(calls_s, &calls) || calls < 0 ||
      !absl::SimpleAtoi(inflight_s, &inflight) || inflight <= 0 ||
      !absl::SimpleAtoi(handshakes_s, &handshakes) || handshakes < 0 ||
      !absl::SimpleAtoi(payload_s, &payload) || payload < 0 ||
      (calls == 0) == (handshakes == 0) ||
      (mode == "mtls" && certs.empty())) {
    std::cerr << "usage: mtls_cost --mode=mtls|plaintext --port=PORT "
                 "--certs=DIR (--calls=N [--inflight=K] | --handshakes=N)\n";
    return 2;
  }
  char dir[] = "/tmp/mesh-mtls-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string config = std::string(dir) + "/mesh.yaml";
  std::ofstream(config) << "apiVersion: mesh/v1\ntrustDomain: bench.local\n"
                           "services:\n  - name: greeter\n"
                           "    hostname: greeter.mesh.internal\n"
                           "    identity: spiffe://bench.local/ns/default/sa/"
                           "bench-server\n"
                           "    endpoints:\n      - {address: 127.0.0.1, "
                           "port: "
                        << port << ", locality: {region: r}}\n";
  mesh::MeshOptions o;
  o.config_path = config;
  o.service_name = "bench-client";
  if (mode == "mtls") {
    o.identity = {certs + "/bench-client.pem", certs + "/bench-client.key",
                  {certs + "/ca.pem"}};
  } else {
    o.plaintext = true;
  }
  auto m = mesh::Mesh::Create(o);
  if (!m.ok()) {
    std::cerr << m.status() << "\n";
    return 1;
  }
  int failed = 0;
  if (calls > 0) {
    auto stub = Greeter::NewStub((*m)->CreateChannel("greeter.mesh.internal"));
    const mesh::bench::Result w = mesh::bench::Run(stub.get(), 1000, 4, payload);
    const mesh::bench::Result r =
        mesh::bench::Run(stub.get(), calls, inflight, payload);
    failed = w.failed + r.failed;
    std::cout << absl::StrFormat(
        "%s load calls=%d inflight=%d failed=%d cpu_us_per_call=%.2f "
        "p50_us=%.1f p99_us=%.1f qps=%.0f\n",
        mode, calls, inflight, failed, r.cpu_us_per_call, r.p50_us, r.p99_us,
        r.qps);
  } else {
    // Warm the xDS resources (the first channel resolves them), then time
    // new connections only.
    grpc::ChannelArguments fresh;
    fresh.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto call_once = [&]() {
      auto stub = Greeter::NewStub(
          (*m)->CreateChannel("greeter.mesh.internal", fresh));
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
      HelloRequest req;
      HelloReply reply;
      return stub->SayHello(&ctx, req, &reply).ok();
    };
    for (int i = 0; i < 20; ++i) failed += !call_once();
    std::vector<double> wall;
    const double cpu0 = CpuSeconds();
    for (int i = 0; i < handshakes; ++i) {
      const auto t0 = Clock::now();
      failed += !call_once();
      wall.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - t0)
              .count());
    }
    const double cpu = (CpuSeconds() - cpu0) * 1e6 / handshakes;
    std::cout << absl::StrFormat(
        "%s connect handshakes=%d failed=%d cpu_us_per_connection=%.1f "
        "p50_us=%.1f\n",
        mode, handshakes, failed, cpu, mesh::bench::Median(wall));
  }
  m->reset();
  std::remove(config.c_str());
  rmdir(dir);
  return failed == 0 ? 0 : 1;
}
