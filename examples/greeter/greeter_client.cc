// greeter_client: calls a mesh hostname in batches and prints, for each
// batch, how many calls succeeded and which localities served them.
//
//   greeter_client --config=mesh.yaml --locality=us-east/us-east-a/cluster-1
//       --target=greeter.mesh.internal --batches=40 --batch_size=50
//       --interval_ms=250
//
// Security: --cert=FILE --key=FILE --bundle=FILE (mTLS), or --plaintext.
// --admin=127.0.0.1:9901 serves the mesh admin endpoint (status page at /).
// --etcd=HOST:PORT[,...] reads endpoint sets (and, without --config, the
// config) from etcd (docs/config.md, "etcd").
// --header=KEY=VALUE (repeatable) adds request metadata (e.g. to match a
// route's header pin); --show=instance counts replies by serving instance,
// --show=peer by the server address the call went to (ClientContext::peer),
// instead of locality. --deadline_ms=N sets each call's deadline (5000).
// --label=KEY=VALUE (repeatable) labels this caller (MeshOptions::labels),
// for routes that match on the caller (match.source.labels).
//
// Ends after --batches batches (bounded), or on SIGTERM/SIGINT; exits 1 if any
// call failed.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "greeter.grpc.pb.h"
#include "mesh/mesh.h"
#include "security_flags.h"

namespace {

std::atomic<bool> g_stop{false};

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, locality, target = "greeter.mesh.internal";
  std::string batches_s = "40", size_s = "50", interval_s = "250";
  std::string deadline_s = "5000";
  std::string show = "locality", header;
  std::vector<std::pair<std::string, std::string>> headers;
  mesh::MeshOptions options;
  for (int i = 1; i < argc; ++i) {
    if (mesh::examples::SecurityFlag(argv[i], &options)) continue;
    if (Flag(argv[i], "--header=", &header)) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(header, absl::MaxSplits('=', 1));
      headers.push_back(kv);
      continue;
    }
    std::string label;
    if (Flag(argv[i], "--label=", &label)) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(label, absl::MaxSplits('=', 1));
      options.labels[kv.first] = kv.second;
      continue;
    }
    std::string etcd;
    if (Flag(argv[i], "--etcd=", &etcd)) {
      // Endpoint sets (or the whole config) from etcd (docs/config.md).
      options.etcd.endpoints = absl::StrSplit(etcd, ',', absl::SkipEmpty());
      continue;
    }
    if (!Flag(argv[i], "--config=", &config) &&
        !Flag(argv[i], "--show=", &show) &&
        !Flag(argv[i], "--admin=", &options.admin_address) &&
        !Flag(argv[i], "--locality=", &locality) &&
        !Flag(argv[i], "--target=", &target) &&
        !Flag(argv[i], "--batches=", &batches_s) &&
        !Flag(argv[i], "--batch_size=", &size_s) &&
        !Flag(argv[i], "--interval_ms=", &interval_s) &&
        !Flag(argv[i], "--deadline_ms=", &deadline_s)) {
      std::cerr << "unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  int batches = 0, size = 0, interval_ms = 0, deadline_ms = 0;
  if ((config.empty() && options.etcd.endpoints.empty()) ||
      !absl::SimpleAtoi(batches_s, &batches) ||
      !absl::SimpleAtoi(deadline_s, &deadline_ms) || deadline_ms <= 0 ||
      !absl::SimpleAtoi(size_s, &size) ||
      !absl::SimpleAtoi(interval_s, &interval_ms) || batches <= 0 ||
      size <= 0 || interval_ms < 0) {
    std::cerr << "usage: greeter_client --config=FILE|--etcd=HOST:PORT[,...] "
                 "[--locality=R/Z/C] [--target=HOST] [--batches=N] "
                 "[--batch_size=N] [--interval_ms=N] "
              << mesh::examples::kSecurityUsage << "\n";
    return 2;
  }
  signal(SIGTERM, [](int) { g_stop = true; });
  signal(SIGINT, [](int) { g_stop = true; });
  std::vector<std::string> loc = absl::StrSplit(locality, '/');
  loc.resize(3);
  options.config_path = config;
  options.service_name = "greeter-client";
  options.locality = {loc[0], loc[1], loc[2]};
  auto m = mesh::Mesh::Create(options);
  if (!m.ok()) {
    std::cerr << "greeter_client: " << m.status() << "\n";
    return 1;
  }
  if (!(*m)->admin_address().empty()) {
    std::cout << "admin endpoint: http://" << (*m)->admin_address() << "/"
              << std::endl;
  }
  std::cout << "security: " << (*m)->GetStatus().security
            << ((*m)->GetStatus().identity.empty()
                    ? ""
                    : ", identity " + (*m)->GetStatus().identity)
            << std::endl;
  auto stub = mesh::examples::Greeter::NewStub((*m)->CreateChannel(target));
  uint64_t total = 0, failed = 0;
  std::string last_version;
  for (int b = 1; b <= batches && !g_stop; ++b) {
    std::map<std::string, int> served;
    std::map<std::string, int> errors;
    for (int i = 0; i < size; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(b == 1 ? 5000 : deadline_ms));
      ctx.set_wait_for_ready(b == 1);  // Only while the mesh starts up.
      for (const auto& [k, v] : headers) ctx.AddMetadata(k, v);
      mesh::examples::HelloRequest req;
      req.set_name("demo");
      mesh::examples::HelloReply reply;
      grpc::Status st = stub->SayHello(&ctx, req, &reply);
      ++total;
      if (st.ok()) {
        ++served[show == "instance" ? reply.instance()
                 : show == "peer"   ? ctx.peer()
                                    : reply.locality()];
      } else {
        ++failed;
        ++errors[absl::StrCat(st.error_code(), " ", st.error_message())];
      }
    }
    const mesh::MeshStatus status = (*m)->GetStatus();
    std::string line = absl::StrCat(
        "batch ", b, ": ", size, " calls, ",
        size - std::accumulate(errors.begin(), errors.end(), 0,
                               [](int a, const auto& kv) {
                                 return a + kv.second;
                               }),
        " ok; served by ",
        absl::StrJoin(served, ", ", absl::PairFormatter("=")));
    if (!errors.empty()) {
      absl::StrAppend(&line, "; FAILED: ",
                      absl::StrJoin(errors, ", ", absl::PairFormatter(" x")));
    }
    if (status.config_version != last_version) {
      absl::StrAppend(&line, " [config ", status.config_version, "]");
      last_version = status.config_version;
    }
    std::cout << line << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  std::cout << "total: " << total << " calls, " << failed << " failed"
            << std::endl;
  return failed == 0 ? 0 : 1;
}
