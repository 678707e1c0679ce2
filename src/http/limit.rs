//! The cap on HTTP requests in flight across every client of a run (`max_connections`).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The default of the top-level `max_connections` key.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// A counting semaphore bounding the requests in flight at once across every [`super::HttpClient`]
/// of a run (`max_connections`), on top of each client's own `concurrency`: pairs on different
/// servers run at the same time, and without it their requests would add up to several times
/// one server's limit.
///
/// A permit is taken just before a request is sent and given back once its answer's body is
/// read or the request failed; never while a thread holds another permit, so permits cannot
/// deadlock (no thread waits for one while holding one).
#[derive(Debug)]
pub struct ConnectionLimit {
    slots: Mutex<Slots>,
    freed: Condvar,
}

#[derive(Debug)]
struct Slots {
    limit: usize,
    in_flight: usize,
    /// The most ever in flight at once, for tests and benchmarks.
    peak: usize,
}

/// One request in flight; gives its slot back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit(Arc<ConnectionLimit>);

impl ConnectionLimit {
    /// A cap of `limit` requests in flight (at least one).
    pub fn new(limit: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            slots: Mutex::new(Slots {
                limit: limit.max(1),
                in_flight: 0,
                peak: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Waits for a free slot and takes it.
    pub fn acquire(self: &Arc<Self>) -> ConnectionPermit {
        let mut slots = self.lock();
        while slots.in_flight >= slots.limit {
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        slots.in_flight += 1;
        slots.peak = slots.peak.max(slots.in_flight);
        ConnectionPermit(Arc::clone(self))
    }

    /// Changes the cap (a daemon's reloaded config): requests already in flight finish, new
    /// ones wait until fewer than `limit` are.
    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit.max(1);
        self.freed.notify_all();
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most requests that were ever in flight at once.
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for ConnectionLimit {
    fn default() -> Self {
        ConnectionLimit {
            slots: Mutex::new(Slots {
                limit: DEFAULT_MAX_CONNECTIONS,
                in_flight: 0,
                peak: 0,
            }),
            freed: Condvar::new(),
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        // One slot is free: one waiter can take it.
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    #[test]
    fn never_more_than_the_limit_at_once() {
        let limit = ConnectionLimit::new(3);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let _permit = limit.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(2));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(limit.peak(), 3);
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn a_permit_gives_its_slot_back_when_dropped() {
        let limit = ConnectionLimit::new(0);
        // At least one: a cap of zero would stop every request.
        assert_eq!(limit.limit(), 1);
        let first = limit.acquire();
        assert_eq!(limit.in_flight(), 1);
        let waiter = {
            let limit = Arc::clone(&limit);
            thread::spawn(move || {
                let _second = limit.acquire();
            })
        };
        thread::sleep(Duration::from_millis(20));
        assert!(
            !waiter.is_finished(),
            "a second permit while the first is held"
        );
        drop(first);
        waiter.join().expect("the waiter got the freed slot");
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn a_raised_limit_lets_waiters_in_at_once() {
        let limit = ConnectionLimit::new(1);
        let held = limit.acquire();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let limit = Arc::clone(&limit);
                thread::spawn(move || drop(limit.acquire()))
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        limit.set_limit(3);
        for waiter in waiters {
            waiter.join().expect("let in by the raised limit");
        }
        assert_eq!(limit.in_flight(), 1);
        drop(held);
        assert_eq!(ConnectionLimit::default().limit(), DEFAULT_MAX_CONNECTIONS);
    }
}
