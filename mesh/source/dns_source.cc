#include "mesh/source/dns_source.h"

#include <arpa/inet.h>
#include <ares.h>
#include <ares_nameser.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mesh {
namespace source {
namespace {

// One c-ares channel, used from one thread.
class Resolver {
 public:
  ~Resolver() {
    if (ok_) ares_destroy(channel_);
  }
  absl::Status Init(const DnsOptions& o) {
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
      return absl::InternalError("c-ares: library init failed");
    }
    struct ares_options opts;
    memset(&opts, 0, sizeof(opts));
    opts.timeout = static_cast<int>(absl::ToInt64Milliseconds(o.query_timeout));
    opts.tries = 2;
    opts.flags = ARES_FLAG_NOSEARCH;
    int st = ares_init_options(
        &channel_, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
    if (st != ARES_SUCCESS) {
      return absl::UnavailableError(
          absl::StrCat("c-ares: cannot start a resolver: ", ares_strerror(st)));
    }
    ok_ = true;
    if (!o.servers.empty()) {
      const std::string csv = absl::StrJoin(o.servers, ",");
      st = ares_set_servers_ports_csv(channel_, csv.c_str());
      if (st != ARES_SUCCESS) {
        return absl::InvalidArgumentError(absl::StrCat(
            "DNS servers \"", csv, "\": ", ares_strerror(st),
            " (give IP or IP:PORT, IPv6 as [::1]:53)"));
      }
    }
    return absl::OkStatus();
  }

  // The raw answer to one query, or why there is none.
  absl::StatusOr<std::string> Query(const std::string& name, int type) {
    struct Result {
      bool done = false;
      int status = ARES_SUCCESS;
      std::string answer;
    } r;
    ares_query(
        channel_, name.c_str(), ns_c_in, type,
        [](void* arg, int status, int, unsigned char* abuf, int alen) {
          auto* r = static_cast<Result*>(arg);
          r->done = true;
          r->status = status;
          if (status == ARES_SUCCESS && abuf != nullptr) {
            r->answer.assign(reinterpret_cast<char*>(abuf), alen);
          }
        },
        &r);
    while (!r.done) {
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      const int bits = ares_getsock(channel_, socks, ARES_GETSOCK_MAXNUM);
      struct pollfd fds[ARES_GETSOCK_MAXNUM];
      int n = 0;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev != 0) fds[n++] = {socks[i], ev, 0};
      }
      struct timeval tv;
      struct timeval* t = ares_timeout(channel_, nullptr, &tv);
      const int ms = t == nullptr ? 1000 : static_cast<int>(
                                               t->tv_sec * 1000 + t->tv_usec / 1000);
      const int ready = poll(fds, n, ms);
      if (ready <= 0) {
        ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        continue;
      }
      for (int i = 0; i < n; ++i) {
        ares_process_fd(
            channel_, (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD,
            (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
      }
    }
    if (r.status == ARES_ENOTFOUND || r.status == ARES_ENODATA) {
      return absl::NotFoundError(absl::StrCat(name, ": ", ares_strerror(r.status)));
    }
    if (r.status != ARES_SUCCESS) {
      return absl::UnavailableError(
          absl::StrCat(name, ": ", ares_strerror(r.status)));
    }
    return r.answer;
  }

 private:
  ares_channel channel_;
  bool ok_ = false;
};

// The smallest TTL of the answer records (seconds), or -1.
int64_t MinTtl(const std::string& msg) {
  const auto* buf = reinterpret_cast<const unsigned char*>(msg.data());
  const int len = static_cast<int>(msg.size());
  if (len < 12) return -1;
  const int qd = (buf[4] << 8) | buf[5];
  const int an = (buf[6] << 8) | buf[7];
  const unsigned char* p = buf + 12;
  auto skip_name = [&]() -> bool {
    char* name = nullptr;
    long n = 0;
    if (ares_expand_name(p, buf, len, &name, &n) != ARES_SUCCESS) return false;
    ares_free_string(name);
    p += n;
    return true;
  };
  for (int i = 0; i < qd; ++i) {
    if (!skip_name() || p + 4 > buf + len) return -1;
    p += 4;
  }
  int64_t min = -1;
  for (int i = 0; i < an; ++i) {
    if (!skip_name() || p + 10 > buf + len) return min;
    const int64_t ttl = (static_cast<int64_t>(p[4]) << 24) | (p[5] << 16) |
                        (p[6] << 8) | p[7];
    const int rdlen = (p[8] << 8) | p[9];
    min = min < 0 ? ttl : std::min(min, ttl);
    p += 10 + rdlen;
    if (p > buf + len) return min;
  }
  return min;
}

// The A and AAAA addresses of `name`; *ttl lowered to their TTL.
absl::StatusOr<std::vector<std::string>> Addresses(Resolver& r,
                                                   const std::string& name,
                                                   int64_t* ttl) {
  std::vector<std::string> out;
  absl::Status first_error;
  for (int type : {ns_t_a, ns_t_aaaa}) {
    absl::StatusOr<std::string> answer = r.Query(name, type);
    if (!answer.ok()) {
      if (answer.status().code() != absl::StatusCode::kNotFound &&
          first_error.ok()) {
        first_error = answer.status();
      }
      continue;
    }
    const auto* buf = reinterpret_cast<const unsigned char*>(answer->data());
    const int len = static_cast<int>(answer->size());
    char text[INET6_ADDRSTRLEN];
    if (type == ns_t_a) {
      struct ares_addrttl a[64];
      int n = 64;
      if (ares_parse_a_reply(buf, len, nullptr, a, &n) != ARES_SUCCESS) n = 0;
      for (int i = 0; i < n; ++i) {
        inet_ntop(AF_INET, &a[i].ipaddr, text, sizeof(text));
        out.push_back(text);
        *ttl = std::min<int64_t>(*ttl, a[i].ttl);
      }
    } else {
      struct ares_addr6ttl a[64];
      int n = 64;
      if (ares_parse_aaaa_reply(buf, len, nullptr, a, &n) != ARES_SUCCESS) {
        n = 0;
      }
      for (int i = 0; i < n; ++i) {
        inet_ntop(AF_INET6, &a[i].ip6addr, text, sizeof(text));
        out.push_back(text);
        *ttl = std::min<int64_t>(*ttl, a[i].ttl);
      }
    }
  }
  if (out.empty()) {
    if (!first_error.ok()) return first_error;
    return absl::NotFoundError(absl::StrCat(name, ": no A or AAAA records"));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<config::Endpoint>> DnsSource::Resolve(
    const DnsOptions& options, const config::DnsEndpoints& entry,
    absl::Duration* ttl_out) {
  Resolver r;
  if (absl::Status st = r.Init(options); !st.ok()) return st;
  int64_t ttl = absl::ToInt64Seconds(options.max_ttl);
  std::vector<config::Endpoint> out;
  auto add = [&](const std::string& addr, uint32_t port, uint32_t weight) {
    config::Endpoint e;
    e.address = addr;
    e.port = port;
    e.weight = weight;
    e.locality = entry.locality;
    e.labels = entry.labels;
    out.push_back(std::move(e));
  };
  if (!entry.srv) {
    absl::StatusOr<std::vector<std::string>> addrs =
        Addresses(r, entry.name, &ttl);
    if (!addrs.ok()) return addrs.status();
    for (const std::string& a : *addrs) add(a, entry.port, entry.weight);
  } else {
    absl::StatusOr<std::string> answer = r.Query(entry.name, ns_t_srv);
    if (!answer.ok()) return answer.status();
    const int64_t srv_ttl = MinTtl(*answer);
    if (srv_ttl >= 0) ttl = std::min(ttl, srv_ttl);
    struct ares_srv_reply* srv = nullptr;
    const int st = ares_parse_srv_reply(
        reinterpret_cast<const unsigned char*>(answer->data()),
        static_cast<int>(answer->size()), &srv);
    if (st != ARES_SUCCESS) {
      return absl::UnavailableError(absl::StrCat(
          entry.name, ": bad SRV answer: ", ares_strerror(st)));
    }
    std::vector<std::string> problems;
    for (struct ares_srv_reply* s = srv; s != nullptr; s = s->next) {
      absl::StatusOr<std::vector<std::string>> addrs =
          Addresses(r, s->host, &ttl);
      if (!addrs.ok()) {
        problems.push_back(std::string(addrs.status().message()));
        continue;
      }
      const uint32_t weight =
          std::clamp<uint32_t>(s->weight, 1, 10000);  // 0 means "rarely".
      for (const std::string& a : *addrs) add(a, s->port, weight);
    }
    ares_free_data(srv);
    if (out.empty()) {
      return absl::NotFoundError(absl::StrCat(
          entry.name, ": no usable SRV target",
          problems.empty() ? "" : ": " + absl::StrJoin(problems, "; ")));
    }
  }
  // One order, so that the same records give the same answer; no address
  // twice (two SRV records may name one target).
  std::sort(out.begin(), out.end(),
            [](const config::Endpoint& a, const config::Endpoint& b) {
              return std::tie(a.address, a.port) < std::tie(b.address, b.port);
            });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const config::Endpoint& a,
                           const config::Endpoint& b) {
                          return a.address == b.address && a.port == b.port;
                        }),
            out.end());
  *ttl_out = std::clamp(absl::Seconds(ttl), options.min_ttl, options.max_ttl);
  return out;
}

std::vector<DnsSource::Entry> DnsSource::EntriesOf(
    const config::MeshConfig& cfg) {
  std::vector<Entry> out;
  for (const config::Service& s : cfg.services) {
    const std::string name = absl::StrCat(s.namespace_name, "/", s.name);
    for (const config::DnsEndpoints& d : s.dns) {
      out.push_back({absl::StrCat("dns:", name, " ", d.Key()), name, d});
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<DnsSource>> DnsSource::Start(DnsOptions options,
                                                            Callback cb) {
  // Check the options once, here, so that a bad server list fails the start.
  Resolver probe;
  if (absl::Status st = probe.Init(options); !st.ok()) return st;
  return std::unique_ptr<DnsSource>(
      new DnsSource(std::move(options), std::move(cb)));
}

DnsSource::DnsSource(DnsOptions options, Callback cb)
    : options_(std::move(options)), cb_(std::move(cb)) {
  thread_ = std::thread([this] { Run(); });
}

DnsSource::~DnsSource() {
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

namespace {
bool SameEntry(const config::DnsEndpoints& a, const config::DnsEndpoints& b) {
  return a.name == b.name && a.srv == b.srv && a.port == b.port &&
         a.locality == b.locality && a.weight == b.weight &&
         a.labels == b.labels;
}
}  // namespace

void DnsSource::SetEntries(std::vector<Entry> entries) {
  internal::MutexLock lock(&mu_);
  std::map<std::string, State> next;
  for (Entry& e : entries) {
    auto it = states_.find(e.key);
    if (it != states_.end() && SameEntry(it->second.entry.dns, e.dns)) {
      next.emplace(e.key, std::move(it->second));
      continue;
    }
    State st;
    st.entry = std::move(e);
    next.emplace(st.entry.key, std::move(st));
    changed_ = true;
  }
  if (next.size() != states_.size()) changed_ = true;
  states_ = std::move(next);
}

bool DnsSource::AwaitFirst(absl::Duration timeout) {
  internal::MutexLock lock(&mu_);
  auto all = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [k, s] : states_) {
      if (!s.tried) return false;
    }
    return true;
  };
  return mu_.AwaitWithTimeout(internal::Condition(&all), timeout);
}

void DnsSource::Run() {
  while (true) {
    std::vector<Entry> due;
    {
      internal::MutexLock lock(&mu_);
      absl::Time next = absl::InfiniteFuture();
      for (const auto& [k, s] : states_) next = std::min(next, s.due);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || changed_;
      };
      mu_.AwaitWithTimeout(internal::Condition(&wake),
                           std::max(absl::ZeroDuration(), next - absl::Now()));
      if (stop_) return;
      changed_ = false;
      const absl::Time now = absl::Now();
      for (const auto& [k, s] : states_) {
        if (s.due <= now) due.push_back(s.entry);
      }
    }
    if (due.empty()) continue;
    std::vector<Answer> answers;
    for (const Entry& e : due) {
      Answer a{e.key, e.service, absl::UnknownError(""), absl::ZeroDuration()};
      a.endpoints = Resolve(options_, e.dns, &a.ttl);
      answers.push_back(std::move(a));
    }
    {
      internal::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      for (Answer& a : answers) {
        auto it = states_.find(a.key);
        if (it == states_.end()) continue;  // Dropped meanwhile.
        State& s = it->second;
        if (a.endpoints.ok()) {
          s.backoff = absl::ZeroDuration();
          s.due = now + a.ttl;
        } else {
          s.backoff = s.backoff == absl::ZeroDuration()
                          ? absl::Seconds(1)
                          : std::min(s.backoff * 2, options_.max_backoff);
          a.ttl = s.backoff;
          s.due = now + s.backoff;
        }
      }
      if (stop_) return;
    }
    if (cb_) cb_(answers);
    // Tried once the answers are delivered (AwaitFirst).
    internal::MutexLock lock(&mu_);
    for (const Answer& a : answers) {
      auto it = states_.find(a.key);
      if (it != states_.end()) it->second.tried = true;
    }
  }
}

}  // namespace source
}  // namespace mesh
