// bench_server: a plain gRPC greeter for the benchmarks, on 127.0.0.1. Prints
// its port on stdout, then serves until SIGTERM/SIGINT. It is the same server
// for every variant, so its cost does not enter the comparison.

#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include <grpcpp/grpcpp.h>

#include "examples/greeter/greeter_service.h"

// --port=N listens on that port (default 0: the kernel picks one).
int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else {
      std::cerr << "usage: bench_server [--port=N]\n";
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  mesh::examples::GreeterService service("bench", "bench/bench/bench");
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  if (!server) return 1;
  std::cout << port << std::endl;
  int sig;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now());
  return 0;
}
