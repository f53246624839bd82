//! The memory budget for request bodies in flight.
//!
//! A request body is read whole before its handler parses it, and the handler's
//! working set (the parsed event, the store's write set, the answer) is a fixed
//! multiple of the body: measured in `docs/performance.md` ("Request bodies").
//! Capping each body at `limits.max_document_mib` therefore bounds one request,
//! but not several: four concurrent 80 MiB posts once took a node past 850 MiB.
//! The budget bounds the sum. Every body larger than [`SMALL_BODY`] holds a
//! share of `limits.body_memory_mib` (its declared length, or the largest
//! allowed body when it declares none) from before it is read until its answer
//! is produced; a request that cannot get its share within [`WAIT`] is answered
//! 503 with `Retry-After`, before its body is read.
//!
//! Small bodies — nearly every API call — never wait: they are bounded by the
//! connection limits instead (`max_connections` × [`SMALL_BODY`]).
//!
//! Each request takes its share in one acquisition (never a part, then more),
//! so two large requests cannot each hold half the budget and wait for the
//! other: there is no hold-and-wait, hence no deadlock.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size are not counted against the budget.
pub const SMALL_BODY: usize = 64 * 1024;

/// Longest a request waits for its share before it is answered 503: long
/// enough for another large body to be stored, short of the request timeout.
pub const WAIT: Duration = Duration::from_secs(30);

/// The budget is kept in KiB so that a share fits the semaphore's `u32`.
const UNIT: usize = 1024;

/// Shortest gap between two "answered 503" log lines: refusals are counted
/// and logged in aggregate, so that a client cannot flood the log either.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The shared budget (one per node).
#[derive(Debug)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
    /// When the last refusal line was written, and refusals since.
    refused: Mutex<(Option<std::time::Instant>, u64)>,
}

/// No share could be had within [`WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("The node is busy with other large requests; retry in a few seconds.")]
pub struct Busy;

impl BodyBudget {
    /// A budget of `total` bytes (at least one largest body, which
    /// `Config::parse` checks, so that every admissible body can be admitted).
    pub fn new(total: usize) -> Self {
        Self::with_wait(total, WAIT)
    }

    /// A budget whose requests wait at most `wait` for their share.
    pub fn with_wait(total: usize, wait: Duration) -> Self {
        let total_units = u32::try_from(total.div_ceil(UNIT)).unwrap_or(u32::MAX);
        BodyBudget {
            sem: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
            refused: Mutex::new((None, 0)),
        }
    }

    /// Takes the share for a body of `len` bytes; `None` for a small one.
    /// A share larger than the whole budget is clamped to it, so such a body
    /// runs alone.
    pub async fn admit(&self, len: usize) -> Result<Option<Share>, Busy> {
        if len <= SMALL_BODY {
            return Ok(None);
        }
        let units = u32::try_from(len.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.total_units);
        match tokio::time::timeout(self.wait, self.sem.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Some(Share(permit))),
            // Timed out, or the semaphore was closed (never done).
            _ => {
                self.note_refusal(len);
                Err(Busy)
            }
        }
    }

    fn note_refusal(&self, len: usize) {
        let mut st = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        st.1 += 1;
        if st.0.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                refused = st.1,
                last_body_bytes = len,
                "large request bodies answered 503 since the last report: the body budget (limits.body_memory_mib) stayed spent for 30 s"
            );
            *st = (Some(std::time::Instant::now()), 0);
        }
    }

    /// Bytes of the budget not held by any request now (for `/metrics`).
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

/// A request's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Share(#[allow(dead_code)] OwnedSemaphorePermit);

/// The request's slot for its share: put in the request's extensions by
/// `http::handle`, which keeps it until the answer is produced; filled there
/// for a declared length, or by the body reader when an undeclared
/// (chunked, HTTP/2) body outgrows [`SMALL_BODY`].
#[derive(Debug, Clone, Default)]
pub struct Ticket(Arc<Mutex<Option<Share>>>);

impl Ticket {
    pub fn holds(&self) -> bool {
        self.0.lock().map(|s| s.is_some()).unwrap_or(true)
    }

    pub fn hold(&self, share: Option<Share>) {
        if let Ok(mut slot) = self.0.lock() {
            if share.is_some() {
                *slot = share;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_bodies_are_free_and_large_ones_share_the_budget() {
        let b = BodyBudget::new(10 * 1024 * 1024);
        assert!(b.admit(SMALL_BODY).await.unwrap().is_none());
        let first = b.admit(6 * 1024 * 1024).await.unwrap();
        assert!(first.is_some());
        assert_eq!(b.available(), 4 * 1024 * 1024);
        // A second 6 MiB body waits until the first is done.
        let waiting = tokio::spawn({
            let b = Arc::new(b);
            let b2 = b.clone();
            async move {
                let share = b2.admit(6 * 1024 * 1024).await.unwrap();
                (share.is_some(), b2.available())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(first);
        let (got, available) = waiting.await.unwrap();
        assert!(got);
        assert_eq!(available, 4 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_runs_alone() {
        let b = BodyBudget::new(1024 * 1024);
        let share = b.admit(5 * 1024 * 1024).await.unwrap();
        assert!(share.is_some());
        assert_eq!(b.available(), 0);
    }

    #[tokio::test]
    async fn a_request_that_cannot_get_a_share_is_told_to_come_back() {
        let b = BodyBudget::with_wait(1024 * 1024, Duration::from_millis(20));
        let _held = b.admit(1024 * 1024).await.unwrap();
        assert!(b.admit(SMALL_BODY + 1).await.is_err());
    }
}
