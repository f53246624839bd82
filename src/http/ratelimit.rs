//! Rate limits: token buckets per API key, per peer, and per client address for
//! failed authentications (`[limits]` in the config; `docs/operators.md`,
//! "Abuse limits").
//!
//! The core, [`Limiter`], is pure: every call is handed the time, so the unit
//! tests below drive it with a made-up clock instead of sleeping. A bucket holds
//! up to `burst` tokens and refills at `per_sec`; a request takes one.
//!
//! Memory stays bounded whatever clients send: a bucket that has refilled to
//! `burst` behaves exactly like one never created, so such buckets are swept out
//! (at most every [`PRUNE_EVERY`], sooner when the table is full), and a table
//! holds at most [`MAX_KEYS`] buckets. When it is full of buckets still in use,
//! new keys go untracked (allowed) until room frees up: refusing them instead
//! would let anyone holding enough addresses lock every newcomer out, and the
//! 160-bit API keys, not this limit, are what stops guessing. A warning says so.
//!
//! Refusals say when to come back (`Retry-After`) and whether they start an
//! *episode* (`first`): the first refusal since the key was last allowed. The
//! callers audit only that one, so a client hammering a closed door produces a
//! counter that grows, not an audit log that does.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most buckets one limiter keeps (a bucket is a few dozen bytes).
pub const MAX_KEYS: usize = 65_536;
/// How often buckets that have refilled are swept out.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often a full table may be swept before a new key is turned away
/// (untracked), so a flood of new keys cannot make every request a sweep.
const FULL_PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A refill rate and a bucket size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// `n` per second on average, bursts of up to `burst` (at least 1); `None`,
    /// meaning no limit, when `n` is 0.
    pub fn per_second(n: u32, burst: u32) -> Option<Rate> {
        (n > 0).then(|| Rate {
            per_sec: f64::from(n),
            burst: f64::from(burst.max(1)),
        })
    }

    /// `n` per minute, all of which may come at once; `None` when `n` is 0.
    pub fn per_minute(n: u32) -> Option<Rate> {
        (n > 0).then(|| Rate {
            per_sec: f64::from(n) / 60.0,
            burst: f64::from(n),
        })
    }
}

/// What a limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit. `retry_after` is when the next request would be allowed;
    /// `first` is true for the first refusal since the key was last allowed.
    Refused {
        retry_after: Duration,
        first: bool,
    },
}

impl Verdict {
    /// `retry_after` in whole seconds, rounded up (at least 1), for
    /// `Retry-After`; `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Verdict::Allowed => None,
            Verdict::Refused { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refused since it was last allowed (for [`Verdict::Refused::first`]).
    refusing: bool,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.at = self.at.max(now);
    }

    /// Whether it has refilled to the top by `now`, i.e. is as good as absent.
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_sec >= rate.burst
    }

    fn refusal(&mut self, rate: Rate) -> Verdict {
        let first = !self.refusing;
        self.refusing = true;
        Verdict::Refused {
            retry_after: Duration::from_secs_f64(((1.0 - self.tokens) / rate.per_sec).max(0.0)),
            first,
        }
    }
}

struct Table<K> {
    buckets: HashMap<K, Bucket>,
    pruned: Instant,
    /// Warned that the table is full since it last had room.
    warned_full: bool,
}

/// Token buckets keyed by `K` (see the module documentation).
pub struct Limiter<K> {
    rate: Option<Rate>,
    max_keys: usize,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone + std::fmt::Debug> Limiter<K> {
    /// A limiter at `rate` (`None`: everything is allowed), holding at most
    /// `max_keys` buckets.
    pub fn new(rate: Option<Rate>, max_keys: usize, now: Instant) -> Self {
        Limiter {
            rate,
            max_keys: max_keys.max(1),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                pruned: now,
                warned_full: false,
            }),
        }
    }

    /// Whether this limiter limits anything.
    pub fn is_enabled(&self) -> bool {
        self.rate.is_some()
    }

    /// Takes a token for `key`: allowed if one was left.
    pub fn take(&self, key: &K, now: Instant) -> Verdict {
        let Some(rate) = self.rate else {
            return Verdict::Allowed;
        };
        self.with_bucket(key, rate, now, true, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                b.refusing = false;
                Verdict::Allowed
            } else {
                b.refusal(rate)
            }
        })
        .unwrap_or(Verdict::Allowed)
    }

    /// Whether `key` has a token left, without taking it (a key never charged
    /// has). For limits on failures: check before, [`Limiter::charge`] after.
    pub fn check(&self, key: &K, now: Instant) -> Verdict {
        let Some(rate) = self.rate else {
            return Verdict::Allowed;
        };
        self.with_bucket(key, rate, now, false, |b| {
            if b.tokens >= 1.0 {
                b.refusing = false;
                Verdict::Allowed
            } else {
                b.refusal(rate)
            }
        })
        .unwrap_or(Verdict::Allowed)
    }

    /// Takes a token for `key` if one is left (a failure to count).
    pub fn charge(&self, key: &K, now: Instant) {
        if let Some(rate) = self.rate {
            self.with_bucket(key, rate, now, true, |b| {
                b.tokens = (b.tokens - 1.0).max(0.0);
            });
        }
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.buckets.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on `key`'s bucket, refilled to `now`. An absent key gets a full
    /// bucket if `create` (and there is room), else `f` does not run and the
    /// answer is `None`.
    fn with_bucket<T>(
        &self,
        key: &K,
        rate: Rate,
        now: Instant,
        create: bool,
        f: impl FnOnce(&mut Bucket) -> T,
    ) -> Option<T> {
        // A poisoned lock means a panic while holding it, which the code below
        // cannot do; if it ever happens, limiting stops rather than the node.
        let mut t = self.table.lock().ok()?;
        let since = now.saturating_duration_since(t.pruned);
        if since >= PRUNE_EVERY
            || (create
                && t.buckets.len() >= self.max_keys
                && !t.buckets.contains_key(key)
                && since >= FULL_PRUNE_EVERY)
        {
            t.buckets.retain(|_, b| !b.is_full(rate, now));
            t.pruned = now;
            if t.buckets.len() < self.max_keys {
                t.warned_full = false;
            }
        }
        if let Some(b) = t.buckets.get_mut(key) {
            b.refill(rate, now);
            return Some(f(b));
        }
        if !create {
            return None;
        }
        if t.buckets.len() >= self.max_keys {
            if !t.warned_full {
                t.warned_full = true;
                tracing::warn!(
                    max = self.max_keys,
                    "rate limiter full: new keys are not limited until older ones expire"
                );
            }
            return None;
        }
        let b = t.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
            refusing: false,
        });
        Some(f(b))
    }
}

/// The key a client address is limited under: IPv4 (also when written as an
/// IPv4-mapped IPv6 address) as is, IPv6 by its /64, because one end site
/// usually holds a whole /64 and could otherwise pick a fresh address per try.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The node's three limiters, built from `[limits]`.
pub struct RateLimits {
    /// Requests per authenticated API key, by the key's record id (never the
    /// key itself).
    pub api_key: Limiter<u64>,
    /// `/fed/v1/` requests per configured peer, by peer name.
    pub peer: Limiter<String>,
    /// Failed API-key authentications per client address ([`address_key`]).
    pub auth_failures: Limiter<IpAddr>,
}

impl RateLimits {
    pub fn from_config(l: &crate::config::LimitsSection) -> Self {
        let now = Instant::now();
        RateLimits {
            api_key: Limiter::new(
                Rate::per_second(l.api_rate_per_sec, l.api_rate_burst),
                MAX_KEYS,
                now,
            ),
            peer: Limiter::new(
                Rate::per_second(l.peer_rate_per_sec, l.peer_rate_burst),
                MAX_KEYS,
                now,
            ),
            auth_failures: Limiter::new(Rate::per_minute(l.auth_failures_per_min), MAX_KEYS, now),
        }
    }

    /// No limits at all (in-process handler tests).
    pub fn unlimited() -> Self {
        let now = Instant::now();
        RateLimits {
            api_key: Limiter::new(None, 1, now),
            peer: Limiter::new(None, 1, now),
            auth_failures: Limiter::new(None, 1, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn refused(v: Verdict) -> (Duration, bool) {
        match v {
            Verdict::Refused { retry_after, first } => (retry_after, first),
            Verdict::Allowed => panic!("allowed"),
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_second(2, 3), 100, t0);
        for _ in 0..3 {
            assert_eq!(l.take(&"k", t0), Verdict::Allowed);
        }
        let (after, first) = refused(l.take(&"k", t0));
        assert!(first);
        assert!((after.as_secs_f64() - 0.5).abs() < 1e-6, "{after:?}");
        assert_eq!(l.take(&"k", t0).retry_after_secs(), Some(1));
        // Half a second later one token is back, and only one.
        assert_eq!(l.take(&"k", t0 + secs(0.5)), Verdict::Allowed);
        assert!(matches!(
            l.take(&"k", t0 + secs(0.5)),
            Verdict::Refused { .. }
        ));
        // However long it waits, no more than the burst accumulates.
        let later = t0 + secs(3600.0);
        for _ in 0..3 {
            assert_eq!(l.take(&"k", later), Verdict::Allowed);
        }
        assert!(matches!(l.take(&"k", later), Verdict::Refused { .. }));
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_second(1, 1), 100, t0);
        assert_eq!(l.take(&1u64, t0), Verdict::Allowed);
        assert!(matches!(l.take(&1u64, t0), Verdict::Refused { .. }));
        assert_eq!(l.take(&2u64, t0), Verdict::Allowed);
    }

    #[test]
    fn only_the_first_refusal_of_an_episode_is_first() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_second(1, 1), 100, t0);
        l.take(&"k", t0);
        assert!(refused(l.take(&"k", t0)).1);
        assert!(!refused(l.take(&"k", t0 + secs(0.1))).1);
        assert!(!refused(l.take(&"k", t0 + secs(0.2))).1);
        assert_eq!(l.take(&"k", t0 + secs(1.5)), Verdict::Allowed);
        assert!(
            refused(l.take(&"k", t0 + secs(1.5))).1,
            "a new episode after an allowed request"
        );
    }

    #[test]
    fn failures_are_checked_before_and_charged_after() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_minute(3), 100, t0);
        let ip = "192.0.2.7";
        assert_eq!(l.check(&ip, t0), Verdict::Allowed);
        assert!(l.is_empty(), "checking creates nothing");
        for _ in 0..3 {
            assert_eq!(l.check(&ip, t0), Verdict::Allowed);
            l.charge(&ip, t0);
        }
        // Locked: 3 per minute is one every 20 s.
        let (after, first) = refused(l.check(&ip, t0));
        assert!(first);
        assert!((after.as_secs_f64() - 20.0).abs() < 1e-6, "{after:?}");
        assert!(!refused(l.check(&ip, t0 + secs(19.9))).1);
        assert_eq!(l.check(&ip, t0 + secs(20.0)), Verdict::Allowed);
        // Charging an empty bucket keeps it empty, not negative.
        l.charge(&ip, t0 + secs(20.0));
        l.charge(&ip, t0 + secs(20.0));
        assert_eq!(l.check(&ip, t0 + secs(40.0)), Verdict::Allowed);
        // The whole window passed: the full allowance is back.
        let t1 = t0 + secs(120.0);
        for _ in 0..3 {
            assert_eq!(l.check(&ip, t1), Verdict::Allowed);
            l.charge(&ip, t1);
        }
        assert!(matches!(l.check(&ip, t1), Verdict::Refused { .. }));
    }

    #[test]
    fn disabled_allows_everything_and_keeps_nothing() {
        let t0 = Instant::now();
        assert_eq!(Rate::per_second(0, 10), None);
        assert_eq!(Rate::per_minute(0), None);
        let l = Limiter::new(None, 100, t0);
        for _ in 0..1000 {
            assert_eq!(l.take(&"k", t0), Verdict::Allowed);
            l.charge(&"k", t0);
        }
        assert!(l.is_empty() && !l.is_enabled());
    }

    #[test]
    fn refilled_buckets_are_swept_out() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_second(10, 10), 1000, t0);
        for k in 0..500u64 {
            l.take(&k, t0);
        }
        assert_eq!(l.len(), 500);
        // Still within the sweep interval: kept.
        l.take(&9999, t0 + secs(30.0));
        assert_eq!(l.len(), 501);
        // After it, everything refilled long ago is gone.
        l.take(&7, t0 + PRUNE_EVERY + secs(1.0));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_table_is_bounded_and_new_keys_go_untracked_when_full() {
        let t0 = Instant::now();
        let l = Limiter::new(Rate::per_second(1, 1), 4, t0);
        for k in 0..4u64 {
            assert_eq!(l.take(&k, t0), Verdict::Allowed);
        }
        // Full of buckets in use: a new key is allowed but not tracked, however
        // often it comes.
        for _ in 0..100 {
            assert_eq!(l.take(&99, t0), Verdict::Allowed);
            l.charge(&98, t0);
        }
        assert_eq!(l.len(), 4);
        // Known keys are still limited.
        assert!(matches!(l.take(&0, t0), Verdict::Refused { .. }));
        // Once the old buckets refilled, a sweep makes room.
        assert_eq!(l.take(&99, t0 + secs(2.0)), Verdict::Allowed);
        assert!(matches!(
            l.take(&99, t0 + secs(2.0)),
            Verdict::Refused { .. }
        ));
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let t0 = Instant::now() + secs(10.0);
        let l = Limiter::new(Rate::per_second(1, 1), 10, t0);
        l.take(&"k", t0);
        assert!(matches!(
            l.take(&"k", t0 - secs(5.0)),
            Verdict::Refused { .. }
        ));
        assert_eq!(l.take(&"k", t0 + secs(1.0)), Verdict::Allowed);
    }

    #[test]
    fn addresses_are_keyed_by_host_or_ipv6_64() {
        let k = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.1"), "192.0.2.1");
        assert_eq!(k("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2::5"));
        assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
    }
}
