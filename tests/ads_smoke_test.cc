// Translation smoke test through the real ADS path: random valid configs
// (seeded, so reproducible) are applied to a live Mesh one after another,
// every hostname in them is called, and gRPC 1.51.1's own xDS client must
// accept every resource we send (no NACK) and apply each version
// completely. This is what keeps the translation honest beyond the unit
// tests: a field gRPC rejects, a gap in priorities, or a cluster a route
// names too early shows up here as a NACK.
//
// MESH_SMOKE_CONFIGS (default 40) sets how many configs are applied.

#include <stdlib.h>

#include <fstream>
#include <map>
#include <random>
#include <set>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/config/config.h"
#include "mesh/mesh.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;

// Makes random configs within the schema (docs/config.md). Some may still
// fail validation (e.g. an unreachable route); the caller skips those.
class ConfigGenerator {
 public:
  explicit ConfigGenerator(uint32_t seed) : rng_(seed) {}

  std::string Next() {
    std::string y = "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n";
    const int services = Int(1, 4);
    for (int s = 0; s < services; ++s) {
      absl::StrAppend(&y, "  - name: s", s, "\n");
      if (Chance(30)) absl::StrAppend(&y, "    namespace: ops\n");
      absl::StrAppend(&y, "    hostname: s", s, ".mesh.internal\n");
      if (Chance(30)) absl::StrAppend(&y, "    port: ", Int(1000, 9000), "\n");
      const bool subsets = Chance(50);
      if (subsets) {
        y += "    subsets:\n      - {name: v1, labels: {version: v1}}\n"
             "      - {name: v2, labels: {version: v2}}\n";
        y += Routes(s, services);
      }
      y += Policy();
      const int eps = Int(0, 6);
      if (eps > 0) y += "    endpoints:\n";
      for (int e = 0; e < eps; ++e) {
        absl::StrAppend(&y, "      - {address: 127.0.", s + 1, ".", e + 1,
                        ", port: ", Int(1, 3), ", weight: ", Int(1, 5),
                        ", labels: {version: v", Int(1, 2), "}");
        const int h = Int(0, 9);
        if (h == 0) y += ", health: UNHEALTHY";
        if (h == 1) y += ", health: DRAINING";
        absl::StrAppend(&y, ", locality: {region: r", Int(1, 2));
        if (Chance(80)) {
          absl::StrAppend(&y, ", zone: z", Int(1, 3));
          if (Chance(60)) absl::StrAppend(&y, ", cluster: c", Int(1, 2));
        }
        y += "}}\n";
      }
    }
    return y;
  }

 private:
  int Int(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng_);
  }
  bool Chance(int percent) { return Int(1, 100) <= percent; }

  std::string Policy() {
    switch (Int(0, 7)) {
      case 1:
        return "    localityPolicy: {failoverPriority: [region, zone, "
               "version]}\n";
      case 2:
        return "    localityPolicy:\n      failover:\n        - {from: r1, "
               "to: [r2]}\n";
      case 3:
        return "    localityPolicy:\n      distribute:\n        - from: r1\n"
               "          to: {\"r1/z1/*\": 60, \"r2\": 40}\n";
      case 4:
        return "    localityPolicy: {zoneAware: {minEndpoints: 2}}\n";
      case 5:
        return "    localityPolicy: {spillover: {mode: failover}}\n";
      case 6:
        return absl::StrCat(
            "    localityPolicy: {spillover: {overprovisioningFactor: ",
            Int(10, 30) / 10.0, ", panicThreshold: ", Int(0, 100), "}}\n");
      default:
        return "";
    }
  }

  std::string Routes(int self, int services) {
    std::string r = "    routes:\n";
    int n = 0;
    if (Chance(50)) {
      absl::StrAppend(&r, "      - name: r", n++,
                      "\n        match: {headers: [{name: x-v, exact: v2}]}\n"
                      "        to: {subset: v2}\n");
    }
    if (Chance(50)) {
      absl::StrAppend(&r, "      - name: r", n++,
                      "\n        match: {method: /mesh.examples.Greeter/"
                      "SayGoodbye}\n        to: {subset: v1}\n"
                      "        fault: {delay: {fixed: 1ms, percent: ",
                      Int(0, 100), "}, abort: {status: UNAVAILABLE, percent: ",
                      Int(0, 10), "}}\n");
    }
    if (Chance(40) && services > 1) {
      absl::StrAppend(&r, "      - name: r", n++,
                      "\n        match: {prefix: /other.Svc/, percent: ",
                      Int(1, 99), "}\n        to: {service: s",
                      (self + 1) % services, "}\n");
    }
    if (Chance(60)) {
      const int w = Int(1, 99);
      absl::StrAppend(&r, "      - name: r", n++,
                      "\n        split: [{subset: v1, weight: ", w,
                      "}, {subset: v2, weight: ", 100 - w,
                      "}]\n        retries: {on: [unavailable], numRetries: ",
                      Int(1, 4), "}\n");
    }
    return n == 0 ? "" : r;
  }

  std::mt19937 rng_;
};

TEST(AdsSmokeTest, GrpcAcceptsEveryResourceOfRandomConfigs) {
  testing::TempDir tmp("mesh-smoke");
  const std::string path = tmp.path() + "/mesh.yaml";
  ConfigGenerator gen(20261127);
  auto next_valid = [&gen]() {
    while (true) {
      std::string y = gen.Next();
      if (config::ParseConfig(y, "gen.yaml").ok()) return y;
    }
  };
  std::string yaml = next_valid();
  std::ofstream(path) << yaml;
  MeshOptions o;
  o.config_path = path;
  o.service_name = "s0";
  o.locality = {"r1", "z1", "c1"};
  o.labels = {{"version", "v1"}};
  o.plaintext = true;
  auto m = Mesh::Create(o);
  ASSERT_TRUE(m.ok()) << m.status();
  const int configs =
      getenv("MESH_SMOKE_CONFIGS") ? atoi(getenv("MESH_SMOKE_CONFIGS")) : 40;
  std::map<std::string, std::unique_ptr<Greeter::Stub>> stubs;
  for (int i = 0; i < configs; ++i) {
    if (i > 0) {
      yaml = next_valid();
      const uint64_t before = (*m)->GetStatus().configs_applied;
      const std::string tmp_path = path + ".new";
      std::ofstream(tmp_path) << yaml;
      ASSERT_EQ(rename(tmp_path.c_str(), path.c_str()), 0);
      ASSERT_TRUE((*m)->WaitForStatus(
          [&](const MeshStatus& s) {
            return s.configs_applied > before || s.configs_rejected > 0;
          },
          absl::Seconds(10)));
      ASSERT_EQ((*m)->GetStatus().configs_rejected, 0u)
          << (*m)->GetStatus().last_error;
    }
    // Subscribe to every hostname (and its declared port): one short call
    // each (the endpoints refuse connections; only the resources matter).
    auto cfg = config::ParseConfig(yaml, "gen.yaml");
    ASSERT_TRUE(cfg.ok());
    for (const config::Service& s : (*cfg)->services) {
      std::vector<std::string> hosts = {s.hostname};
      if (s.port != 0) hosts.push_back(absl::StrCat(s.hostname, ":", s.port));
      for (const std::string& h : hosts) {
        auto& stub = stubs[h];
        if (stub == nullptr) stub = Greeter::NewStub((*m)->CreateChannel(h));
        for (const char* header : {"", "v2"}) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(50));
          if (header[0] != '\0') ctx.AddMetadata("x-v", header);
          HelloReply reply;
          stub->SayHello(&ctx, HelloRequest(), &reply);
        }
      }
    }
    const std::string version = (*m)->GetStatus().config_version;
    const bool synced = (*m)->WaitForStatus(
        [&](const MeshStatus& s) {
          return s.nacks > 0 || s.applied_version.rfind(version, 0) == 0;
        },
        absl::Seconds(10));
    const MeshStatus s = (*m)->GetStatus();
    ASSERT_EQ(s.nacks, 0u) << "config " << i << " was NACKed: "
                           << s.last_error << "\n" << yaml;
    ASSERT_TRUE(synced) << "config " << i << " (version " << version
                        << ") not applied; applied " << s.applied_version
                        << "\n" << yaml;
  }
  EXPECT_EQ((*m)->GetStatus().nacks, 0u);
  EXPECT_EQ((*m)->GetStatus().configs_applied,
            static_cast<uint64_t>(configs));
}

}  // namespace
}  // namespace mesh
