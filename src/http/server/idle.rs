//! Closing connections that hold a slot without using it.
//!
//! hyper's HTTP/1 header deadline covers a client that sends its request head
//! slowly or idles between keep-alive requests, but two ways of holding a
//! connection slot for ever get past it: dripping the HTTP/2 preface (the server
//! cannot tell HTTP/1 from HTTP/2 until it has it whole, and waits without a
//! deadline), and an HTTP/2 connection with no request open (keep-alive pings,
//! which any HTTP/2 client answers, keep it up). Enough of either fills
//! `max_connections` and locks everyone else out.
//!
//! So each connection counts the requests it has in flight, from the moment a
//! request reaches the service until its response body has been sent or dropped
//! ([`Activity::begin`], [`Tracked`]); a connection with none for the idle
//! deadline (`header_timeout_secs`) is closed ([`close_when_idle`]). A long-poll
//! or a large streamed answer is in flight, so it is never cut short here; the
//! request deadline and the streams' own bounds govern those.

use axum::body::{Body, Bytes};
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What one connection is doing.
pub(super) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the last request began or ended, in ms since `start`.
    last: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::SeqCst);
    }

    /// A request has reached the service: in flight until the guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.touch();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// How long the connection has had nothing in flight (zero while it has).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last.load(Ordering::SeqCst));
        let idle = self.start.elapsed().saturating_sub(last);
        // A request that began while we looked counts as activity.
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            Duration::ZERO
        } else {
            idle
        }
    }
}

/// One request in flight (see [`Activity::begin`]).
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until it has been sent (or
/// the connection dropped it).
pub(super) struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub(super) fn wrap(body: Body, in_flight: InFlight) -> Body {
        Body::new(Tracked {
            body,
            _in_flight: in_flight,
        })
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Runs `conn` until it ends (`Some` of its output), or until it has had
/// nothing in flight for `idle` (`None`; the connection is dropped, which
/// closes it). Checked every half `idle`, so an idle connection goes between
/// `idle` and 1.5 × `idle`.
pub(super) async fn close_when_idle<F: Future>(
    conn: F,
    activity: &Activity,
    idle: Duration,
) -> Option<F::Output> {
    tokio::pin!(conn);
    let mut tick = tokio::time::interval((idle / 2).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = &mut conn => return Some(out),
            _ = tick.tick() => {
                if activity.idle_for() >= idle {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_end_and_busy_ones_do_not() {
        let idle = Duration::from_millis(100);
        // Nothing in flight: ended after the deadline.
        let a = Activity::new();
        let out = close_when_idle(std::future::pending::<()>(), &a, idle).await;
        assert_eq!(out, None);

        // A request in flight for longer than the deadline: kept until it ends.
        let a = Activity::new();
        let guard = a.begin();
        let work = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(guard);
            "done"
        };
        assert_eq!(close_when_idle(work, &a, idle).await, Some("done"));

        // A response body keeps its request in flight until it is dropped.
        let a = Activity::new();
        let body = Tracked::wrap(Body::from("x"), a.begin());
        assert!(a.idle_for() == Duration::ZERO);
        drop(body);
        assert_eq!(a.in_flight.load(Ordering::SeqCst), 0);
    }
}
