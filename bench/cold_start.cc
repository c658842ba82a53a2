// cold_start: time from main() to the first successful call, through a
// direct channel or through the mesh (which adds starting the agent, the
// xDS exchange and the connection). Prints one number in microseconds.
//
//   cold_start --mode=direct|mesh --port=PORT [--config=FILE] [--breakdown]
//
// --breakdown: also prints, on stderr, when each stage ended (ms since
// main()): "created" (Mesh::Create returned: the agent started and
// serves), "channel" (CreateChannel returned) and "answered".
//
// Run many times by bench/cold_start.sh, which reports medians.

#include <chrono>
#include <iostream>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "greeter.grpc.pb.h"
#include "mesh/mesh.h"

int main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  std::string mode, config;
  int port = 0;
  bool breakdown = false;
  auto stage = [&](const char* name) {
    if (!breakdown) return;
    std::cerr << name << "="
              << std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::steady_clock::now() - start)
                         .count() /
                     1000.0
              << " ";
  };
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--mode=")) mode = std::string(a);
    else if (absl::ConsumePrefix(&a, "--config=")) config = std::string(a);
    else if (absl::ConsumePrefix(&a, "--port=")) (void)absl::SimpleAtoi(a, &port);
    else if (a == "--breakdown") breakdown = true;
  }
  if ((mode != "direct" && mode != "mesh") || port <= 0 ||
      (mode == "mesh" && config.empty())) {
    std::cerr << "usage: cold_start --mode=direct|mesh --port=PORT "
                 "[--config=FILE] [--breakdown]\n";
    return 2;
  }
  std::unique_ptr<mesh::Mesh> m;
  std::shared_ptr<grpc::Channel> channel;
  if (mode == "mesh") {
    auto created = mesh::Mesh::Create({.config_path = config,
                                       .locality = {"r", "z", "c"},
        .plaintext = true});
    if (!created.ok()) {
      std::cerr << created.status() << "\n";
      return 1;
    }
    m = *std::move(created);
    stage("created");
    channel = m->CreateChannel("greeter.mesh.internal");
    stage("channel");
  } else {
    channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                  grpc::InsecureChannelCredentials());
  }
  auto stub = mesh::examples::Greeter::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  mesh::examples::HelloReply reply;
  const grpc::Status st =
      stub->SayHello(&ctx, mesh::examples::HelloRequest(), &reply);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  stage("answered");
  if (breakdown) std::cerr << std::endl;
  if (!st.ok()) {
    std::cerr << st.error_message() << "\n";
    return 1;
  }
  std::cout << us << std::endl;
  return 0;
}
