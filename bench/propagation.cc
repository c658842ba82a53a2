// propagation: time from a config change to the first call routed by it,
// and the memory each endpoint costs, with N endpoints in the config.
//
//   propagation --endpoints=N [--changes=K] [--etcd=HOST:PORT] [--dir=DIR]
//
// Three greeter servers (instances "a", "b", "c") run in this process. The
// config holds N endpoints of one service: N-2 in 100 far-away clusters
// (nothing listens there; the caller's own cluster has priority, so gRPC
// does not connect to them) and two in the caller's cluster: a, always, and
// b or c, which each change swaps. A change is a rename of the config file
// (file mode) or a put of the caller cluster's endpoint set (etcd mode: the
// document at /mesh/config, the far endpoints as 100-endpoint sets under
// /mesh/endpoints/). The time runs from just before the rename or put to the
// first call that the newly added instance answers (calls back to back, one
// in flight), so it includes connecting to it. (Swapping the only local
// endpoint would measure gRPC's priority failover instead: while the new
// one connects, gRPC 1.51 moves to the next priority and connects to all of
// its endpoints.)
//
// Memory (file mode): this process's RSS with the two local endpoints, then
// with all N, divided by N-2; the same for the agent process, at rest (3 s
// after the change: see IdleTrim in mesh/agent/agent.cc); and this
// process's heap in use (glibc's mallinfo2: allocated and not freed), which
// leaves out memory that malloc keeps after a free (RSS does not).
//
// Prints one line: "propagation MODE N p50_ms p99_ms max_ms
// client_bytes_per_endpoint agent_bytes_per_endpoint
// client_heap_bytes_per_endpoint" (-1 where not measured), and in etcd mode "etcd-put N p50_ms" (the put alone, which
// the propagation includes). Bounded: at most K changes, each given 30 s.

#include <algorithm>
#include <chrono>
#include <malloc.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "examples/greeter/greeter_service.h"
#include "greeter.grpc.pb.h"
#include "mesh/mesh.h"
#include "mesh/source/etcd_client.h"

namespace {

constexpr char kHeader[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
)";

std::string Endpoint(const std::string& addr, int port,
                     const std::string& region, const std::string& zone,
                     const std::string& cluster, const char* indent) {
  return absl::StrCat(indent, "- {address: ", addr, ", port: ", port,
                      ", locality: {region: ", region, ", zone: ", zone,
                      ", cluster: ", cluster, "}}\n");
}

// Far endpoint i: 127.1.x.y:9, cluster far-(i % 100).
std::string Far(int i, const char* indent) {
  const int k = i % 100;
  return Endpoint(absl::StrCat("127.1.", i / 250, ".", i % 250 + 1), 9,
                  absl::StrCat("far", k / 20), absl::StrCat("fz", k / 5),
                  absl::StrCat("far-", k), indent);
}

std::string Local(int port, const char* indent) {
  return Endpoint("127.0.0.1", port, "r1", "z1", "c1", indent);
}

int64_t RssBytes(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      int64_t kb = 0;
      (void)absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(v), " kB"), &kb);
      return kb * 1024;
    }
  }
  return -1;
}

struct Server {
  explicit Server(const std::string& name)
      : service(name, "r1/z1/c1") {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                       &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
  }
  mesh::examples::GreeterService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

// Calls until instance `want` answers; false after `timeout`.
bool AwaitServedBy(mesh::examples::Greeter::Stub& stub, const std::string& want,
                   absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    mesh::examples::HelloReply reply;
    if (stub.SayHello(&ctx, mesh::examples::HelloRequest(), &reply).ok() &&
        reply.instance() == want) {
      return true;
    }
  }
  return false;
}

void Report(const std::string& mode, int n, std::vector<double> ms,
            double client_per, double agent_per, double client_heap_per) {
  std::sort(ms.begin(), ms.end());
  auto rank = [&](double q) {
    if (ms.empty()) return -1.0;
    size_t i = static_cast<size_t>(q * ms.size() + 0.999999);
    return ms[std::min(ms.size(), std::max<size_t>(i, 1)) - 1];
  };
  std::printf("propagation %s %d %.2f %.2f %.2f %.0f %.0f %.0f\n",
              mode.c_str(), n, rank(0.5), rank(0.99),
              ms.empty() ? -1.0 : ms.back(), client_per, agent_per,
              client_heap_per);
  std::fflush(stdout);
}

void Atomic(const std::string& path, const std::string& data) {
  std::ofstream(path + ".tmp") << data;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1000, changes = 20;
  std::string etcd, dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--endpoints=")) {
      (void)absl::SimpleAtoi(a, &n);
    } else if (absl::ConsumePrefix(&a, "--changes=")) {
      (void)absl::SimpleAtoi(a, &changes);
    } else if (absl::ConsumePrefix(&a, "--etcd=")) {
      etcd = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--dir=")) {
      dir = std::string(a);
    } else {
      std::cerr << "usage: propagation --endpoints=N [--changes=K] "
                   "[--etcd=HOST:PORT] [--dir=DIR]\n";
      return 2;
    }
  }
  if (n < 2 || changes < 1) {
    std::cerr << "propagation: --endpoints >= 2, --changes >= 1\n";
    return 2;
  }
  if (n < 3) n = 3;
  Server a("a"), b("b"), c("c");
  const int ports[2] = {b.port, c.port};
  const char* names[2] = {"b", "c"};
  std::string far;  // The N-2 far endpoints, as a service's list.
  for (int i = 0; i < n - 2; ++i) absl::StrAppend(&far, Far(i, "      "));
  const std::string path = absl::StrCat(dir, "/propagation-", getpid(), ".yaml");
  auto file_config = [&](int port, bool with_far) {
    return absl::StrCat(kHeader, "    endpoints:\n", Local(a.port, "      "),
                        Local(port, "      "), with_far ? far : "");
  };
  auto local_set = [&](int port) {
    return absl::StrCat(
        "apiVersion: mesh/v1\nkind: EndpointSet\nservice: greeter\n"
        "endpoints:\n",
        Local(a.port, "  "), Local(port, "  "));
  };
  auto write = [&](const std::string& data) {
    Atomic(path, data);
    return path + ".tmp";
  };

  mesh::MeshOptions o;
  o.service_name = "propagation";
  o.locality = {"r1", "z1", "c1"};
  o.plaintext = true;
  std::unique_ptr<mesh::source::EtcdClient> client;
  if (etcd.empty()) {
    std::rename(write(file_config(b.port, false)).c_str(), path.c_str());
    o.config_path = path;
  } else {
    auto c = mesh::source::EtcdClient::Create({{etcd}});
    if (!c.ok()) {
      std::cerr << c.status() << "\n";
      return 1;
    }
    client = *std::move(c);
    // A clean store: what an earlier run left would count too.
    auto old = client->List("/mesh/");
    bool ok = old.ok();
    if (ok) {
      for (const auto& kv : old->kvs) ok = ok && client->Delete(kv.key).ok();
    }
    ok = ok && client->Put("/mesh/config", kHeader).ok();
    std::string set;
    for (int i = 0; i < n - 2; ++i) {
      absl::StrAppend(&set, Far(i, "  "));
      if ((i + 1) % 100 == 0 || i == n - 3) {
        ok = ok && client
                       ->Put(absl::StrCat("/mesh/endpoints/default/greeter/far",
                                          i / 100),
                             absl::StrCat("apiVersion: mesh/v1\nkind: "
                                          "EndpointSet\nservice: greeter\n"
                                          "endpoints:\n",
                                          set))
                       .ok();
        set.clear();
      }
    }
    ok = ok && client
                   ->Put("/mesh/endpoints/default/greeter/local",
                         local_set(b.port))
                   .ok();
    if (!ok) {
      std::cerr << "propagation: cannot fill etcd at " << etcd << "\n";
      return 1;
    }
    o.etcd.endpoints = {etcd};
  }
  o.startup_timeout = absl::Seconds(60);
  auto m = mesh::Mesh::Create(o);
  if (!m.ok()) {
    std::cerr << m.status() << "\n";
    return 1;
  }
  auto stub = mesh::examples::Greeter::NewStub(
      (*m)->CreateChannel("greeter.mesh.internal"));
  if (!AwaitServedBy(*stub, "b", absl::Seconds(30))) {
    std::cerr << "propagation: no call reached instance b\n";
    return 1;
  }
  double client_per = -1, agent_per = -1, client_heap_per = -1;
  const std::string agent_pid = absl::StrCat((*m)->GetStatus().control_plane_pid);
  int current = 0;  // b
  if (etcd.empty()) {
    // Memory: two endpoints, then all N (and b swapped for c).
    for (int i = 0; i < 200; ++i) AwaitServedBy(*stub, "a", absl::Seconds(5));
    const int64_t c0 = RssBytes("self"), a0 = RssBytes(agent_pid);
    const auto heap = [] {
      struct mallinfo2 mi = mallinfo2();
      return static_cast<int64_t>(mi.uordblks + mi.hblkhd);
    };
    const int64_t h0 = heap();
    const std::string tmp = write(file_config(c.port, true));
    std::rename(tmp.c_str(), path.c_str());
    if (!AwaitServedBy(*stub, "c", absl::Seconds(60))) {
      std::cerr << "propagation: the full config never took effect\n";
      return 1;
    }
    for (int i = 0; i < 200; ++i) AwaitServedBy(*stub, "c", absl::Seconds(5));
    client_per = static_cast<double>(RssBytes("self") - c0) / (n - 2);
    client_heap_per = static_cast<double>(heap() - h0) / (n - 2);
    // The agent at rest: it returns the memory freed after a change once
    // changes have been quiet for 2 s (mesh/agent/agent.cc, IdleTrim).
    absl::SleepFor(absl::Seconds(3));
    agent_per = static_cast<double>(RssBytes(agent_pid) - a0) / (n - 2);
    current = 1;
  }
  std::vector<double> ms, put_ms;
  for (int i = 0; i < changes; ++i) {
    const int next = 1 - current;
    absl::Time t0;
    if (etcd.empty()) {
      const std::string tmp = write(file_config(ports[next], true));
      t0 = absl::Now();
      std::rename(tmp.c_str(), path.c_str());
    } else {
      t0 = absl::Now();
      auto r = client->Put("/mesh/endpoints/default/greeter/local",
                           local_set(ports[next]));
      if (!r.ok()) {
        std::cerr << r.status() << "\n";
        return 1;
      }
      put_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    }
    if (!AwaitServedBy(*stub, names[next], absl::Seconds(30))) {
      std::cerr << "propagation: change " << i << " never took effect\n";
      return 1;
    }
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (getenv("PROPAGATION_TRACE") != nullptr) {
      std::fprintf(stderr, "change %d at %s took %.1f ms\n", i,
                   absl::FormatTime("%H:%M:%E3S", t0, absl::UTCTimeZone()).c_str(),
                   ms.back());
    }
    current = next;
  }
  Report(etcd.empty() ? "file" : "etcd", n, ms, client_per, agent_per,
         client_heap_per);
  if (!put_ms.empty()) {
    std::sort(put_ms.begin(), put_ms.end());
    std::printf("etcd-put %d %.2f\n", n, put_ms[put_ms.size() / 2]);
  }
  m->reset();
  std::remove(path.c_str());
  return 0;
}
