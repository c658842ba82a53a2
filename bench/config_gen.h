// Config text and services of a given size, for the benchmarks
// (bench/policy_bench, bench/yaml_readers). Header-only.

#ifndef BENCH_CONFIG_GEN_H_
#define BENCH_CONFIG_GEN_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "mesh/config/config.h"

namespace mesh {
namespace bench {

using mesh::config::Endpoint;
using mesh::config::Health;
using mesh::config::Service;

// `n` endpoints over `localities` localities in 5 regions x 4 zones, every
// tenth endpoint unhealthy (so spillover math runs).
inline Service MakeService(int n, int localities) {
  Service s;
  s.name = "bench";
  s.hostname = "bench.mesh.internal";
  for (int i = 0; i < n; ++i) {
    const int l = i % localities;
    Endpoint e;
    e.address = absl::StrCat("10.", i / 65536, ".", (i / 256) % 256, ".",
                             i % 256);
    e.port = 8080;
    e.locality = {absl::StrCat("region-", l % 5),
                  absl::StrCat("zone-", l % 20), absl::StrCat("cluster-", l)};
    e.health = i % 10 == 0 ? Health::kUnhealthy : Health::kHealthy;
    s.endpoints.push_back(std::move(e));
  }
  return s;
}

// The config file text for MakeService's endpoints.
inline std::string MakeYaml(int n, int localities) {
  std::string y =
      "apiVersion: mesh/v1\ntrustDomain: bench\nservices:\n"
      "  - name: bench\n    hostname: bench.mesh.internal\n"
      "    endpoints:\n";
  for (const Endpoint& e : MakeService(n, localities).endpoints) {
    absl::StrAppend(&y, "      - {address: ", e.address, ", port: ", e.port,
                    ", locality: {region: ", e.locality.region,
                    ", zone: ", e.locality.zone, ", cluster: ",
                    e.locality.cluster, "}",
                    e.health == Health::kUnhealthy ? ", health: unhealthy"
                                                   : "",
                    "}\n");
  }
  return y;
}

}  // namespace bench
}  // namespace mesh

#endif  // BENCH_CONFIG_GEN_H_
