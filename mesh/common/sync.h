// File: mesh/common/sync.h
//
// The locks mesh uses: absl::Mutex and absl::CondVar, made visible to
// ThreadSanitizer. Debian's abseil is not instrumented, so TSan cannot see
// absl's locking and would report every access guarded by it as a race; in
// a TSan build (bazel test --config=tsan) these wrappers tell TSan about each
// lock, unlock and wait with __tsan_acquire/__tsan_release on the mutex.
// In other builds they are absl's types with no extra cost.

#ifndef MESH_COMMON_SYNC_H_
#define MESH_COMMON_SYNC_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(MESH_TSAN)
#include <sanitizer/tsan_interface.h>
#define MESH_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define MESH_TSAN_RELEASE(p) __tsan_release(p)
#else
#define MESH_TSAN_ACQUIRE(p) ((void)0)
#define MESH_TSAN_RELEASE(p) ((void)0)
#endif

namespace mesh {
namespace internal {

using Condition = absl::Condition;

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_.Lock();
    MESH_TSAN_ACQUIRE(this);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    MESH_TSAN_RELEASE(this);
    mu_.Unlock();
  }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() {
    mu_.ReaderLock();
    MESH_TSAN_ACQUIRE(this);
  }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() {
    MESH_TSAN_RELEASE(this);
    mu_.ReaderUnlock();
  }
  // absl releases and re-acquires the mutex while waiting, and evaluates
  // the condition with it held (possibly on the thread that unlocks): each
  // evaluation acquires for TSan too.
  void Await(const Condition& c) {
    Annotated a{&c, this};
    MESH_TSAN_RELEASE(this);
    mu_.Await(absl::Condition(&Annotated::Eval, &a));
    MESH_TSAN_ACQUIRE(this);
  }
  bool AwaitWithTimeout(const Condition& c, absl::Duration timeout) {
    Annotated a{&c, this};
    MESH_TSAN_RELEASE(this);
    const bool r =
        mu_.AwaitWithTimeout(absl::Condition(&Annotated::Eval, &a), timeout);
    MESH_TSAN_ACQUIRE(this);
    return r;
  }
  absl::Mutex* native() { return &mu_; }

 private:
  struct Annotated {
    const Condition* c;
    Mutex* mu;
    static bool Eval(Annotated* a) {
      MESH_TSAN_ACQUIRE(a->mu);
      const bool r = a->c->Eval();
      MESH_TSAN_RELEASE(a->mu);  // absl may unlock right after.
      return r;
    }
  };
  absl::Mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  void Wait(Mutex* mu) {
    MESH_TSAN_RELEASE(mu);
    cv_.Wait(mu->native());
    MESH_TSAN_ACQUIRE(mu);
  }
  // Returns true on timeout, like absl::CondVar.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) {
    MESH_TSAN_RELEASE(mu);
    const bool r = cv_.WaitWithDeadline(mu->native(), deadline);
    MESH_TSAN_ACQUIRE(mu);
    return r;
  }
  void Signal() { cv_.Signal(); }
  void SignalAll() { cv_.SignalAll(); }

 private:
  absl::CondVar cv_;
};

}  // namespace internal
}  // namespace mesh

#endif  // MESH_COMMON_SYNC_H_
