//! The operator webhook (`[support] webhook`): a small JSON body posted when a
//! request addressed to us arrives, a response to our request arrives, a status
//! changes, or a respond-by time passes without an answer. Deliveries are
//! retried with exponential backoff; a notice that still fails is logged and
//! dropped (the case itself is in the store and the audit log either way).
//!
//! Notices wait in a bounded queue, so a flood of records cannot grow memory
//! without bound: when it is full, further notices are dropped with a warning.
//! Overdue cases are found by a periodic scan (`[support] overdue_check`); each
//! is notified once per run of the node.

use super::case::Case;
use super::CaseStore;
use crate::store::Store;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Notices queued for delivery at most.
const QUEUE: usize = 1000;
/// Delivery attempts per notice.
const ATTEMPTS: u32 = 8;
/// First retry delay; doubles per attempt, at most [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the operator hears about (the webhook's JSON body, tagged by `event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    RequestReceived {
        case: Uuid,
        from: Uuid,
        from_name: String,
        title: String,
        severity: String,
        respond_by: u64,
        exercise: bool,
    },
    ResponseReceived {
        case: Uuid,
        from: Uuid,
        from_name: String,
        kind: String,
        exercise: bool,
    },
    StatusChanged {
        case: Uuid,
        status: String,
        exercise: bool,
    },
    /// The respond-by time passed: `waiting_for` have not answered (for our
    /// request), or we have not (for a request to us).
    Overdue {
        case: Uuid,
        title: String,
        role: &'static str,
        respond_by: u64,
        waiting_for: Vec<Uuid>,
        exercise: bool,
    },
}

/// Queues notices for the webhook and runs its delivery and the overdue scan.
pub struct Notifier {
    webhook: Option<String>,
    check: Duration,
    tx: mpsc::Sender<Notice>,
    rx: Mutex<Option<mpsc::Receiver<Notice>>>,
}

impl Notifier {
    /// `webhook`: where to post (none: notices are only logged).
    pub fn new(webhook: Option<String>, check: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Notifier {
            webhook,
            check,
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// A notifier with no webhook.
    pub fn disabled() -> Self {
        Self::new(None, Duration::from_secs(60))
    }

    /// Queues `n` (never blocks).
    pub fn notice(&self, n: Notice) {
        tracing::info!(notice = ?n, "incident-support notice");
        if self.webhook.is_none() {
            return;
        }
        if let Err(e) = self.tx.try_send(n) {
            tracing::warn!(reason = %e, "webhook queue full; notice dropped");
        }
    }

    /// Starts the delivery task and the overdue scan for the node of `own`;
    /// both end when `stopping` turns true. Call once.
    pub fn spawn(
        self: &Arc<Self>,
        store: Arc<Store>,
        own: Uuid,
        stopping: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(url), Some(rx)) = (self.webhook.clone(), rx) {
            tasks.push(tokio::spawn(deliver(url, rx, stopping.clone())));
        }
        tasks.push(tokio::spawn(scan_overdue(
            self.clone(),
            store,
            own,
            stopping,
        )));
        tasks
    }
}

async fn deliver(url: String, mut rx: mpsc::Receiver<Notice>, mut stopping: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(reason = %e, "cannot build the webhook client; notices only logged");
            return;
        }
    };
    loop {
        let n = tokio::select! {
            n = rx.recv() => match n { Some(n) => n, None => return },
            _ = stopping.changed() => return,
        };
        let mut delay = RETRY_BASE;
        for attempt in 1..=ATTEMPTS {
            match client.post(&url).json(&n).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook refused a notice"),
                Err(e) => tracing::warn!(reason = %e, attempt, "webhook unreachable"),
            }
            if attempt == ATTEMPTS {
                tracing::error!(notice = ?n, "webhook notice dropped after {ATTEMPTS} attempts");
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stopping.changed() => return,
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

async fn scan_overdue(
    notifier: Arc<Notifier>,
    store: Arc<Store>,
    own: Uuid,
    mut stopping: watch::Receiver<bool>,
) {
    let mut told: HashSet<Uuid> = HashSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(notifier.check) => {}
            _ = stopping.changed() => return,
        }
        let s = store.clone();
        let found =
            tokio::task::spawn_blocking(move || overdue(&s, own, crate::model::time::now_secs()))
                .await;
        match found {
            Ok(Ok(list)) => {
                for n in list {
                    if let Notice::Overdue { case, .. } = &n {
                        if told.insert(*case) {
                            notifier.notice(n);
                        }
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(reason = %e, "overdue scan failed"),
            Err(e) => tracing::warn!(reason = %e, "overdue scan stopped"),
        }
    }
}

/// The overdue notices for the node of `own` at `now`.
pub fn overdue(
    store: &Store,
    own: Uuid,
    now: u64,
) -> Result<Vec<Notice>, crate::store::StoreError> {
    let mut out = Vec::new();
    for u in store.case_uuids()? {
        let Some(case) = Case::from_records(store.case_records(&u)?) else {
            continue;
        };
        if !case.overdue_for(own, now) {
            continue;
        }
        let d = case.details();
        let requester = case.requester() == own;
        out.push(Notice::Overdue {
            case: u,
            title: d.title.clone(),
            role: if requester { "requester" } else { "addressee" },
            respond_by: d.respond_by,
            waiting_for: if requester { case.silent() } else { vec![own] },
            exercise: d.exercise,
        });
    }
    Ok(out)
}
