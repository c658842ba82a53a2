#include "mesh/agent/registrar.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "mesh/common/log.h"

namespace mesh {
namespace agent {

namespace {

const char* StateName(config::Health h) {
  return h == config::Health::kDraining ? "draining" : "registered";
}

}  // namespace

std::string Registrar::KeyFor(const std::string& prefix,
                              const std::string& service,
                              const config::Endpoint& e) {
  const bool v6 = e.address.find(':') != std::string::npos;
  return absl::StrCat(prefix, "instances/", service, "/", v6 ? "[" : "",
                      e.address, v6 ? "]" : "", ":", e.port);
}

absl::StatusOr<std::unique_ptr<Registrar>> Registrar::Start(Options options,
                                                            OnState on_state) {
  if (options.ttl < absl::Seconds(2) || options.ttl > absl::Minutes(5) ||
      options.ttl != absl::Seconds(absl::ToInt64Seconds(options.ttl))) {
    return absl::InvalidArgumentError(
        absl::StrCat("registration TTL must be whole seconds from 2 s to 5 "
                     "min, got ",
                     absl::FormatDuration(options.ttl)));
  }
  absl::StatusOr<std::unique_ptr<source::EtcdClient>> c =
      source::EtcdClient::Create(options.etcd);
  if (!c.ok()) return c.status();
  return std::unique_ptr<Registrar>(
      new Registrar(std::move(options), std::move(*c), std::move(on_state)));
}

Registrar::Registrar(Options options,
                     std::unique_ptr<source::EtcdClient> client,
                     OnState on_state)
    : options_(std::move(options)),
      client_(std::move(client)),
      on_state_(std::move(on_state)),
      started_(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(),
                                absl::UTCTimeZone())) {
  thread_ = std::thread([this] { Run(); });
}

Registrar::~Registrar() {
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Registrar::Add(Instance instance) {
  internal::MutexLock lock(&mu_);
  Entry& e = entries_[instance.listen];
  e.state.listen = instance.listen;
  e.state.state = "registering";
  e.state.error.clear();
  e.instance = std::move(instance);
  e.dirty = true;
  wake_ = true;
  ReportLocked();
}

void Registrar::Refuse(const std::string& listen, const std::string& why) {
  internal::MutexLock lock(&mu_);
  Entry& e = entries_[listen];
  e.instance.listen = listen;
  e.instance.service.clear();  // Never put.
  e.state.listen = listen;
  e.state.state = "refused";
  e.state.error = why;
  e.dirty = false;
  ReportLocked();
}

void Registrar::SetHealth(config::Health health) {
  internal::MutexLock lock(&mu_);
  if (health_ == health) return;
  health_ = health;
  for (auto& [listen, e] : entries_) {
    if (!e.instance.service.empty()) e.dirty = true;
  }
  wake_ = true;
}

void Registrar::Deregister() {
  int64_t lease;
  {
    internal::MutexLock lock(&mu_);
    deregistered_ = true;
    lease = lease_;
    lease_ = 0;
    wake_ = true;
  }
  if (lease != 0) {
    const absl::Status st = client_->Revoke(lease);
    if (!st.ok()) {
      internal::Log(internal::kWarning,
                    absl::StrCat("mesh agent: deregistering: ", st.message(),
                                 " (the instances go when the lease expires)"));
    }
  }
  internal::MutexLock lock(&mu_);
  for (auto& [listen, e] : entries_) {
    if (e.state.state == "refused") continue;
    e.state.state = "deregistered";
    e.state.lease = 0;
  }
  ReportLocked();
}

void Registrar::ReportLocked() {
  if (on_state_ == nullptr) return;
  std::vector<State> states;
  for (const auto& [listen, e] : entries_) states.push_back(e.state);
  on_state_(states);
}

void Registrar::Run() {
  const int64_t ttl_s = absl::ToInt64Seconds(options_.ttl);
  const absl::Duration every = options_.ttl / 3;
  absl::Time next_keepalive = absl::InfiniteFuture();
  absl::Time lost_at = absl::InfinitePast();
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || wake_;
  };
  internal::MutexLock lock(&mu_);
  // Waits `d` (or until stopped or woken); false when stopping.
  auto pause = [&](absl::Duration d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    mu_.AwaitWithTimeout(internal::Condition(&woken), d);
    wake_ = false;
    return !stop_;
  };
  auto fail_all = [&](const std::string& why, const char* state)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [listen, e] : entries_) {
      if (e.instance.service.empty()) continue;
      e.state.error = why;
      if (state != nullptr) e.state.state = state;
    }
    ReportLocked();
  };
  while (!stop_) {
    bool any = false;
    for (const auto& [listen, e] : entries_) any |= !e.instance.service.empty();
    if (!any || deregistered_) {
      mu_.Await(internal::Condition(&woken));
      wake_ = false;
      continue;
    }
    if (lease_ == 0) {
      mu_.Unlock();
      absl::StatusOr<int64_t> l = client_->Grant(ttl_s);
      mu_.Lock();
      if (stop_ || deregistered_) {
        if (l.ok()) {
          mu_.Unlock();
          (void)client_->Revoke(*l);
          mu_.Lock();
        }
        continue;
      }
      if (!l.ok()) {
        fail_all(std::string(l.status().message()), nullptr);
        if (!pause(absl::Seconds(1))) break;
        continue;
      }
      lease_ = *l;
      for (auto& [listen, e] : entries_) {
        if (e.instance.service.empty()) continue;
        e.dirty = true;
        e.state.ttl_left = ttl_s;
        e.state.last_keepalive = absl::Now();
      }
      if (lost_at != absl::InfinitePast()) {
        internal::Log(internal::kWarning,
                      absl::StrCat("mesh agent: registered again on lease ",
                                   lease_, " after a gap of ",
                                   absl::FormatDuration(absl::Now() - lost_at)));
        lost_at = absl::InfinitePast();
      }
      next_keepalive = absl::Now() + every;
    }
    // Put what changed (a new lease puts everything).
    bool lease_gone = false;
    for (auto& [listen, e] : entries_) {
      if (!e.dirty || e.instance.service.empty()) continue;
      config::EndpointSet set;
      set.instance = true;
      set.service = e.instance.service;
      set.identity = options_.identity;
      set.started = started_;
      set.endpoints.push_back(e.instance.endpoint);
      set.endpoints[0].health = health_;
      const std::string key =
          KeyFor(options_.prefix, e.instance.service, e.instance.endpoint);
      const std::string value = config::EndpointSetToYaml(set);
      const int64_t lease = lease_;
      const bool new_lease = e.state.lease != lease || e.state.key.empty();
      mu_.Unlock();
      absl::StatusOr<int64_t> put = client_->Put(key, value, lease);
      mu_.Lock();
      if (!put.ok()) {
        e.state.error = std::string(put.status().message());
        lease_gone = put.status().code() == absl::StatusCode::kNotFound;
        break;
      }
      if (new_lease || e.state.registrations == 0) ++e.state.registrations;
      e.dirty = false;
      e.state.key = key;
      e.state.lease = lease;
      e.state.state = StateName(health_);
      e.state.error.clear();
    }
    if (lease_gone) {
      lease_ = 0;
      lost_at = absl::Now();
      fail_all("the lease was gone when putting; registering again", "lost");
      continue;
    }
    ReportLocked();
    bool dirty = false;
    for (const auto& [listen, e] : entries_) dirty |= e.dirty;
    if (dirty) {
      if (!pause(absl::Seconds(1))) break;  // Put failed: retry soon.
      continue;
    }
    if (!pause(next_keepalive - absl::Now())) break;
    if (absl::Now() < next_keepalive || lease_ == 0 || deregistered_) continue;
    const int64_t lease = lease_;
    mu_.Unlock();
    absl::StatusOr<int64_t> left = client_->KeepAliveOnce(lease);
    mu_.Lock();
    if (lease_ != lease) continue;  // Deregistered meanwhile.
    if (left.ok()) {
      next_keepalive = absl::Now() + every;
      for (auto& [listen, e] : entries_) {
        if (e.instance.service.empty()) continue;
        e.state.ttl_left = *left;
        e.state.last_keepalive = absl::Now();
        e.state.error.clear();
      }
      ReportLocked();
    } else if (left.status().code() == absl::StatusCode::kNotFound) {
      // Expired (etcd lost it, or we were paused past the TTL): the keys are
      // gone; put them again on a new lease.
      lease_ = 0;
      lost_at = absl::Now();
      internal::Log(internal::kWarning,
                    absl::StrCat("mesh agent: registration lease ", lease,
                                 " expired; registering again"));
      fail_all(absl::StrCat("lease ", lease, " expired; registering again"),
               "lost");
    } else {
      // etcd unreachable: the lease may still live; try again soon.
      next_keepalive = absl::Now() + absl::Seconds(1);
      fail_all(std::string(left.status().message()), nullptr);
    }
  }
  const int64_t lease = deregistered_ ? 0 : lease_;
  lease_ = 0;
  mu_.Unlock();
  if (lease != 0) (void)client_->Revoke(lease);
  mu_.Lock();
}

std::string EncodeRegistrations(const std::vector<Registrar::State>& states) {
  std::vector<std::string> lines;
  for (const Registrar::State& s : states) {
    const int64_t ka = s.last_keepalive == absl::InfinitePast()
                           ? -1
                           : absl::ToUnixMillis(s.last_keepalive);
    lines.push_back(absl::StrJoin(
        {s.listen, s.key, absl::StrCat(s.lease), absl::StrCat(s.ttl_left),
         absl::StrCat(ka), absl::StrCat(s.registrations), s.state,
         absl::StrReplaceAll(s.error, {{"\t", " "}, {"\n", "; "}})},
        "\t"));
  }
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<std::vector<Registrar::State>> DecodeRegistrations(
    absl::string_view text) {
  std::vector<Registrar::State> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    Registrar::State s;
    int64_t ka = -1;
    if (f.size() != 8 || !absl::SimpleAtoi(f[2], &s.lease) ||
        !absl::SimpleAtoi(f[3], &s.ttl_left) || !absl::SimpleAtoi(f[4], &ka) ||
        !absl::SimpleAtoi(f[5], &s.registrations)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad registration line: ", line));
    }
    s.listen = f[0];
    s.key = f[1];
    s.last_keepalive =
        ka < 0 ? absl::InfinitePast() : absl::FromUnixMillis(ka);
    s.state = f[6];
    s.error = f[7];
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace agent
}  // namespace mesh
