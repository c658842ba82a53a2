// A real dnsmasq for tests, on a loopback port, started and stopped by PID.
// Bazel's sandbox must be off for it (tags = ["no-sandbox"]): dnsmasq
// started as root changes its group id, which a user namespace forbids.

#ifndef TESTS_DNSMASQ_H_
#define TESTS_DNSMASQ_H_

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/child.h"
#include "tests/free_port.h"

namespace mesh {
namespace testing {

inline constexpr char kDnsmasq[] = "/usr/sbin/dnsmasq";
inline bool HaveDnsmasq() { return access(kDnsmasq, X_OK) == 0; }

// dnsmasq serving `hosts` (A/AAAA, re-read on Reload) and SRV records
// (fixed per start), TTL 1 s, on 127.0.0.1:port.
class Dnsmasq {
 public:
  explicit Dnsmasq(std::string dir)
      : dir_(std::move(dir)), port_(FreePort(/*udp=*/true)) {}
  void SetHosts(const std::string& hosts) {
    std::ofstream(dir_ + "/hosts.new") << hosts;
    rename((dir_ + "/hosts.new").c_str(), (dir_ + "/hosts").c_str());
  }
  // "_grpc._tcp.NAME,TARGET,PORT,PRIORITY,WEIGHT" each.
  void SetSrv(std::vector<std::string> srv) { srv_ = std::move(srv); }
  void Start() {
    std::vector<std::string> args = {
        kDnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
        absl::StrCat("--port=", port_), "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
        "--local-ttl=1", "--user=root", "--group=root", "--pid-file=", "--log-facility=-",
        "--addn-hosts=" + dir_ + "/hosts", "--local=/test/"};
    for (const std::string& s : srv_) args.push_back("--srv-host=" + s);
    child_ = std::make_unique<Child>(args);
  }
  void Reload() { kill(child_->pid(), SIGHUP); }
  void Stop() { child_.reset(); }
  std::string server() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  const std::string dir_;
  const int port_;
  std::vector<std::string> srv_;
  std::unique_ptr<Child> child_;
};

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_DNSMASQ_H_
