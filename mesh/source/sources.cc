#include "mesh/source/sources.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "mesh/source/etcd_source.h"
#include "mesh/source/file_watcher.h"
#include "mesh/source/last_good.h"

namespace mesh {
namespace source {
namespace {

// Which source a part key belongs to.
std::string SourceOf(const std::string& key) {
  if (absl::StartsWith(key, "etcd:")) return "etcd";
  if (absl::StartsWith(key, "dns:")) return "dns";
  return "file";
}

}  // namespace

Sources::Sources(SourcesOptions options, Callbacks cb)
    : options_(std::move(options)), cb_(std::move(cb)) {}

Sources::~Sources() {
  // Stop every thread before the state they call into goes.
  {
    internal::MutexLock lock(&mu_);
    stopping_ = true;
    expiry_cv_.Signal();
  }
  if (expirer_.joinable()) expirer_.join();
  file_.reset();
  etcd_.reset();
  dns_.reset();
}

std::vector<SourceStatus> Sources::Status() {
  internal::MutexLock lock(&mu_);
  std::vector<SourceStatus> out;
  for (const auto& [name, s] : status_) out.push_back(s);
  return out;
}

void Sources::SetStatusLocked(const std::string& name, bool ok,
                              const std::string& version_or_error) {
  SourceStatus& s = status_[name];
  s.name = name;
  // A failure repeated while a source stays down (retries every few
  // seconds) is reported once, not at every retry; a repeated success (a
  // DNS answer refreshed by its TTL) at most every 30 s, for its time.
  const absl::Time now = absl::Now();
  const bool news =
      ok ? !s.ok || s.version != version_or_error ||
               now - reported_[name] > absl::Seconds(30)
         : s.ok || s.last_error != version_or_error;
  s.ok = ok;
  if (ok) {
    s.version = version_or_error;
    s.last_success = now;
  } else {
    s.last_error = version_or_error;
    s.last_error_time = now;
  }
  if (!news || !started_) return;
  reported_[name] = now;
  if (cb_.on_status) cb_.on_status(s);
  if (!ok && cb_.on_error) cb_.on_error(version_or_error);
}

void Sources::AnsweredLocked(const std::string& name) {
  if (waiting_.erase(name) == 0) return;
  // Its first answer since a stale start: the copy's parts for it go.
  composer_.RemoveIf([&](const std::string& key) {
    return SourceOf(key) == name && !fresh_keys_.count(key);
  });
}

void Sources::RecomposeLocked() {
  if (!started_) return;
  UpdateDnsEntriesLocked();
  absl::StatusOr<Composer::Result> r = composer_.Compose();
  if (!r.ok()) {
    if (cb_.on_rejected) cb_.on_rejected(std::string(r.status().message()));
    return;
  }
  const bool stale = !waiting_.empty();
  expiry_cv_.Signal();  // A hold may have begun.
  if (r->snapshot->version == version_ && stale == reported_stale_) return;
  version_ = r->snapshot->version;
  reported_stale_ = stale;
  if (cb_.on_config) cb_.on_config(*r, stale);
}

void Sources::ExpireHeldLoop() {
  internal::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time next = composer_.NextExpiry();
    if (next == absl::InfiniteFuture()) {
      expiry_cv_.Wait(&mu_);
    } else {
      expiry_cv_.WaitWithDeadline(&mu_, next);
    }
    if (stopping_) break;
    if (composer_.ExpireHeld(absl::Now()) > 0) RecomposeLocked();
  }
}

void Sources::UpdateDnsEntriesLocked() {
  std::shared_ptr<const config::MeshConfig> doc = composer_.Document();
  if (dns_ == nullptr || doc == nullptr) return;
  std::vector<DnsSource::Entry> entries = DnsSource::EntriesOf(*doc);
  if (!entries.empty() && !status_.count("dns")) {
    status_["dns"].name = "dns";
    status_["dns"].where = options_.dns.servers.empty()
                               ? "system resolver"
                               : absl::StrJoin(options_.dns.servers, ",");
  }
  // Answers for entries the config no longer has go.
  std::set<std::string> keys;
  for (const DnsSource::Entry& e : entries) keys.insert(e.key);
  composer_.RemoveIf([&](const std::string& key) {
    return SourceOf(key) == "dns" && !keys.count(key);
  });
  dns_->SetEntries(std::move(entries));
}

void Sources::OnFile(absl::StatusOr<std::string> contents) {
  internal::MutexLock lock(&mu_);
  if (!contents.ok()) {
    SetStatusLocked("file", false, std::string(contents.status().message()));
    return;
  }
  fresh_keys_.insert(options_.config_path);
  AnsweredLocked("file");
  composer_.SetDocument(options_.config_path, *contents);
  SetStatusLocked("file", true, config::ContentVersion(*contents));
  RecomposeLocked();
}

void Sources::OnDns(const std::vector<DnsSource::Answer>& answers) {
  internal::MutexLock lock(&mu_);
  bool changed = false;
  std::vector<std::string> errors;
  int good = 0;
  for (const DnsSource::Answer& a : answers) {
    if (!a.endpoints.ok()) {
      errors.push_back(absl::StrCat(a.key, ": ", a.endpoints.status().message(),
                                    " (keeping the last answer)"));
      continue;
    }
    ++good;
    fresh_keys_.insert(a.key);
    config::EndpointSet set;
    set.service = a.service;
    set.endpoints = *a.endpoints;
    changed |= composer_.SetDnsAnswer(a.key, std::move(set));
  }
  if (errors.empty()) {
    AnsweredLocked("dns");
    SetStatusLocked("dns", true, absl::StrCat(good, " answers"));
  } else {
    SetStatusLocked("dns", false, absl::StrJoin(errors, "\n"));
  }
  if (changed) RecomposeLocked();
}

absl::StatusOr<std::unique_ptr<Sources>> Sources::Start(
    SourcesOptions options, Callbacks callbacks) {
  std::unique_ptr<Sources> s(new Sources(std::move(options), std::move(callbacks)));
  const SourcesOptions& o = s->options_;
  if (o.config_path.empty() && o.etcd.endpoints.empty()) {
    return absl::InvalidArgumentError(
        "no config source: give a config file, etcd endpoints, or both");
  }
  std::vector<std::string> failed;  // Each failed source's problem.
  std::string watched;              // What the file watcher has seen.
  {
    internal::MutexLock lock(&s->mu_);
    if (!o.config_path.empty()) {
      s->status_["file"].where = o.config_path;
      absl::StatusOr<std::string> data =
          config::ReadFileToString(o.config_path, config::kMaxConfigBytes);
      if (data.ok()) {
        watched = *data;
        s->composer_.SetDocument(o.config_path, *data);
        s->fresh_keys_.insert(o.config_path);
        s->SetStatusLocked("file", true, config::ContentVersion(*data));
      } else {
        failed.push_back(std::string(data.status().message()));
        s->SetStatusLocked("file", false, failed.back());
      }
    }
  }
  if (!o.etcd.endpoints.empty()) {
    const std::string prefix = o.etcd_prefix;
    Sources* self = s.get();
    EtcdSource::Callbacks ecb;
    ecb.on_change = [self, prefix](const EtcdSource::Change& c) {
      internal::MutexLock lock(&self->mu_);
      if (c.full) {
        self->fresh_keys_.erase(self->fresh_keys_.lower_bound("etcd:"),
                                self->fresh_keys_.lower_bound("etcd;"));
      }
      for (const EtcdEvent& e : c.events) {
        self->fresh_keys_.insert(EtcdSource::PartKey(e.kv.key));
      }
      self->AnsweredLocked("etcd");
      bool changed = false;
      const std::vector<std::string> ignored =
          EtcdSource::Apply(prefix, c, &self->composer_, &changed);
      if (!ignored.empty()) {
        self->SetStatusLocked(
            "etcd", false,
            absl::StrCat("keys outside the layout ignored (", prefix,
                         "config, ", prefix, "endpoints/...): ",
                         absl::StrJoin(ignored, ", ")));
      }
      self->SetStatusLocked("etcd", true,
                            absl::StrCat("revision ", c.revision));
      if (changed) self->RecomposeLocked();
    };
    ecb.on_error = [self](const std::string& err) {
      internal::MutexLock lock(&self->mu_);
      self->SetStatusLocked("etcd", false, err);
    };
    ecb.on_watching = [self](int64_t rev) {
      internal::MutexLock lock(&self->mu_);
      self->SetStatusLocked("etcd", true,
                            absl::StrCat("watching from revision ", rev));
    };
    {
      internal::MutexLock lock(&s->mu_);
      s->status_["etcd"].where = absl::StrCat(
          absl::StrJoin(o.etcd.endpoints, ","), " ", o.etcd_prefix);
    }
    absl::StatusOr<std::unique_ptr<EtcdSource>> etcd =
        EtcdSource::Start(o.etcd, o.etcd_prefix, std::move(ecb));
    if (!etcd.ok()) return etcd.status();
    s->etcd_ = *std::move(etcd);
    if (!s->etcd_->AwaitFirst(o.start_wait)) {
      internal::MutexLock lock(&s->mu_);
      const SourceStatus& st = s->status_["etcd"];
      failed.push_back(absl::StrCat(
          "etcd (", st.where, ") did not answer within ",
          absl::FormatDuration(o.start_wait),
          st.last_error.empty() ? "" : ": " + st.last_error));
    }
  }
  {
    // DNS: the entries of the config as composed so far.
    absl::StatusOr<std::unique_ptr<DnsSource>> dns = DnsSource::Start(
        o.dns, [self = s.get()](const std::vector<DnsSource::Answer>& a) {
          self->OnDns(a);
        });
    if (!dns.ok()) return dns.status();
    internal::MutexLock lock(&s->mu_);
    s->dns_ = *std::move(dns);
    s->UpdateDnsEntriesLocked();
  }
  // Bounded: a name that does not resolve is reported, not waited for.
  s->dns_->AwaitFirst(o.start_wait);
  internal::MutexLock lock(&s->mu_);
  absl::StatusOr<Composer::Result> fresh = s->composer_.Compose();
  if (fresh.ok() && failed.empty()) {
    s->initial_ = *std::move(fresh);
  } else {
    // Fall back on the last-known-good copy for what failed.
    std::string why = absl::StrJoin(failed, "\n");
    // (A missing document is already explained by the source that failed.)
    if (!fresh.ok() && (failed.empty() || s->composer_.Document() != nullptr)) {
      absl::StrAppend(&why, why.empty() ? "" : "\n", fresh.status().message());
    }
    if (o.state_dir.empty()) return absl::InvalidArgumentError(why);
    absl::StatusOr<LastGood> lg = LoadLastGood(o.state_dir);
    absl::StatusOr<Composer> restored =
        lg.ok() ? Composer::Restore(lg->text, o.config_path.empty()
                                                  ? EtcdSource::PartKey(
                                                        o.etcd_prefix + "config")
                                                  : o.config_path)
                : absl::StatusOr<Composer>(lg.status());
    if (!restored.ok()) {
      if (restored.status().code() == absl::StatusCode::kNotFound) {
        return absl::InvalidArgumentError(why);
      }
      return absl::Status(restored.status().code(),
                          absl::StrCat(why, "\n", restored.status().message()));
    }
    // The copy, with every fresh part of the sources that did answer over
    // it; or the copy alone if that does not compose.
    for (const auto& [name, st] : s->status_) {
      if (!st.ok && name != "dns") s->waiting_.insert(name);
    }
    Composer merged = *restored;
    const std::set<std::string> waiting = s->waiting_;
    merged.RemoveIf([&](const std::string& key) {
      return !waiting.count(SourceOf(key));
    });
    merged.CopyFrom(s->composer_, [&](const std::string& key) {
      return !waiting.count(SourceOf(key));
    });
    absl::StatusOr<Composer::Result> mixed = merged.Compose();
    if (mixed.ok()) {
      s->composer_ = std::move(merged);
      s->initial_ = *std::move(mixed);
    } else {
      absl::StatusOr<Composer::Result> old = restored->Compose();
      if (!old.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(why, "\n", LastGoodPath(o.state_dir),
                         ": the last-known-good copy does not compose: ",
                         old.status().message()));
      }
      s->composer_ = *std::move(restored);
      s->fresh_keys_.clear();
      for (const auto& [name, st] : s->status_) {
        if (name != "dns") s->waiting_.insert(name);
      }
      // etcd answered but its parts were dropped with the mix: it gives
      // them again after Begin (the file does on its next change).
      s->relist_etcd_ = s->etcd_ != nullptr;
      s->initial_ = *std::move(old);
    }
    s->initial_stale_ = true;
    s->stale_reason_ = why;
    s->last_good_saved_ = lg->saved;
  }
  s->version_ = s->initial_.snapshot->version;
  s->reported_stale_ = s->initial_stale_;
  s->UpdateDnsEntriesLocked();
  if (!o.config_path.empty()) {
    Sources* self = s.get();
    absl::StatusOr<std::unique_ptr<FileWatcher>> w = FileWatcher::Start(
        o.config_path, watched,
        [self](absl::StatusOr<std::string> c) { self->OnFile(std::move(c)); });
    if (!w.ok()) return w.status();
    s->file_ = *std::move(w);
  }
  return s;
}

void Sources::Begin() {
  internal::MutexLock lock(&mu_);
  started_ = true;
  // What happened before, for status.
  if (cb_.on_status) {
    for (const auto& [name, st] : status_) {
      cb_.on_status(st);
      reported_[name] = absl::Now();
    }
  }
  // Anything that arrived since Start.
  RecomposeLocked();
  if (relist_etcd_) etcd_->Relist();
  expirer_ = std::thread([this] { ExpireHeldLoop(); });
}

}  // namespace source
}  // namespace mesh
