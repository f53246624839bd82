//! What the API records in the audit log, decided in one place around every
//! request ([`around`], called by [`super::handle`]) rather than in each handler:
//!
//! * **changes** — every request that is not a read (a POST/PUT/DELETE other than
//!   the MISP read endpoints that take a POST body, and outside `/fed/`), once an
//!   authenticated caller reached a handler: who, which action (`events.add`,
//!   `users.edit`, `auth_keys.add`, … from the path), which uuid(s) the handler
//!   named with [`subject`], and the outcome. A successful change is recorded and
//!   fsynced *before* the answer leaves, and runs on its own task, so a client
//!   that hangs up or times out cannot cancel the record of a change already made;
//! * **denials** — every `ApiError::Forbidden` answer (the error leaves a
//!   [`Refusal`] on the response), with the caller;
//! * **authentication failures** — recorded by the `Caller` extractor
//!   ([`auth_failure`]), which knows why;
//! * **rate-limit refusals** — as denials with reason `rate limit (<limit>)`,
//!   the first refusal of each episode only ([`rate_limited`]).
//!
//! The client address recorded (`remote`) is the [`ClientAddr`]: the TCP peer,
//! or the client a trusted proxy forwarded (shown with the proxy).
//!
//! While the log is failing, changes are refused with 503 before they reach a
//! handler; a change whose record fails after the store took it is answered
//! 503 (see the `audit` module documentation for why).

use super::error::{ApiError, REQUEST_PATH};
use super::forwarded::ClientAddr;
use super::ratelimit::Verdict;
use super::AppState;
use crate::audit::{Durability, Entry, Kind, Outcome};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The TCP peer's address: a request extension the server attaches to every
/// request. [`super::handle`] turns it into the [`ClientAddr`] the rest of the
/// node uses (forwarding headers believed only from trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Left on an error response by `ApiError::into_response`: whether it was an
/// authorisation denial, and the reason to record.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub denied: bool,
    pub reason: String,
}

/// What handlers tell the audit about the request they serve.
#[derive(Debug, Default)]
struct Note {
    actor: Option<String>,
    subjects: Vec<String>,
    event: Option<uuid::Uuid>,
}

tokio::task_local! {
    static NOTE: Arc<Mutex<Note>>;
}

fn with_note(f: impl FnOnce(&mut Note)) {
    // Outside a request (in-process calls to handlers) there is nothing to note.
    let _ = NOTE.try_with(|n| {
        if let Ok(mut n) = n.lock() {
            f(&mut n);
        }
    });
}

/// The authenticated caller (set by the `Caller` extractor).
pub(crate) fn set_actor(email: &str) {
    with_note(|n| n.actor = Some(email.to_owned()));
}

/// Names an element the request changes (a uuid, or a user/org id). Call from
/// the handler's async code: blocking closures run outside the request's task.
pub(crate) fn subject(s: impl std::fmt::Display) {
    let s = s.to_string();
    with_note(|n| {
        if !n.subjects.contains(&s) {
            n.subjects.push(s);
        }
    });
}

/// The event the changed elements belong to.
pub(crate) fn event(e: uuid::Uuid) {
    with_note(|n| n.event = Some(e));
}

/// How a request is recorded if it is a change: `None` for reads. The action is
/// `<controller>.<verb>` from the normalised path (`/admin/` dropped).
pub(crate) fn classify(method: &Method, path: &str) -> Option<Kind> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let mut segs = path.split('/').filter(|s| !s.is_empty()).peekable();
    if segs.peek() == Some(&"admin") {
        segs.next();
    }
    let controller = segs.next()?;
    let verb = segs.next().unwrap_or("");
    // Federation records its own (sync accept/reject); MISP reads that take a
    // POST body are reads.
    if controller == "fed" || matches!(verb, "view" | "index" | "restSearch" | "listSightings") {
        return None;
    }
    let action = if verb.is_empty() {
        controller.to_owned()
    } else {
        format!("{controller}.{verb}")
    };
    Some(match controller {
        "users" | "organisations" => Kind::UserChange { action },
        "auth_keys" => Kind::KeyChange { action },
        _ => Kind::Write { action },
    })
}

/// Runs `inner` (the routed request) and records what the audit needs (see the
/// module documentation).
pub(crate) async fn around<F>(
    state: &AppState,
    method: &Method,
    path: &str,
    remote: Option<ClientAddr>,
    inner: F,
) -> Response
where
    F: Future<Output = Response> + Send + 'static,
{
    let change = classify(method, path);
    let request = format!("{method} {path}");
    if change.is_some() && state.audit.is_failing() {
        tracing::error!(%request, "refusing a change: the audit log cannot be written");
        if state.audit.disk_full() {
            let path = path.to_owned();
            return REQUEST_PATH
                .scope(path, async {
                    ApiError::InsufficientStorage(AUDIT_DISK_FULL.into()).into_response()
                })
                .await;
        }
        return unavailable(
            path,
            "The audit log cannot be written; changes are refused until it can.",
        )
        .await;
    }
    // Below the store's free-space reserve, every change is refused before a
    // handler runs: sled and the audit log never meet a full disk this way.
    // With a flush stuck in sled, a change would only queue behind it.
    if change.is_some() {
        if let Some(stalled) = state.store.write_stalled() {
            tracing::error!(%request, seconds = stalled.as_secs(), "refusing a change: the database is not completing writes to disk");
            return unavailable(
                path,
                "The database is not completing writes to disk; changes are refused. The operator must restart the node.",
            )
            .await;
        }
        if let Err(e) = state.store.check_space() {
            tracing::warn!(error = %e, %request, "refusing a change: the disk is nearly full");
            let path = path.to_owned();
            return REQUEST_PATH
                .scope(path, async { ApiError::from(e).into_response() })
                .await;
        }
    }
    let is_change = change.is_some();
    let note = Arc::new(Mutex::new(Note::default()));
    let scoped = NOTE.scope(note.clone(), inner);
    let state = state.clone();
    let path = path.to_owned();
    let job = async move {
        let resp = scoped.await;
        after(&state, change, request, &path, remote, &note, resp).await
    };
    if !is_change {
        return job.await;
    }
    match tokio::spawn(job).await {
        Ok(resp) => resp,
        Err(e) => ApiError::Internal(format!("request task failed: {e}")).into_response(),
    }
}

/// Why changes are refused while the audit log cannot be written for lack of
/// space. Unlike the store, the log takes writes again by itself once space is
/// freed (its periodic checkpoint is the probe).
const AUDIT_DISK_FULL: &str = "Insufficient storage: the node's disk is full, so the audit log cannot be written and changes are refused until space is freed (reads still work).";

async fn unavailable(path: &str, message: &str) -> Response {
    let message = message.to_owned();
    REQUEST_PATH
        .scope(path.to_owned(), async move {
            ApiError::Unavailable(message).into_response()
        })
        .await
}

async fn after(
    state: &AppState,
    change: Option<Kind>,
    request: String,
    path: &str,
    remote: Option<ClientAddr>,
    note: &Mutex<Note>,
    resp: Response,
) -> Response {
    let note = match note.lock() {
        Ok(mut n) => std::mem::take(&mut *n),
        Err(_) => Note::default(),
    };
    let refusal = resp.extensions().get::<Refusal>().cloned();
    let fill = |mut e: Entry| {
        e = e.request(request.clone());
        if let Some(r) = remote {
            e = e.remote(r.to_string());
        }
        if !note.subjects.is_empty() {
            e = e.subject(note.subjects.join(","));
        }
        if let Some(ev) = note.event {
            e = e.event(ev);
        }
        e
    };
    if let Some(r) = refusal.as_ref().filter(|r| r.denied) {
        let actor = note.actor.clone().unwrap_or_else(|| "unknown".into());
        state
            .audit
            .record_or_log_async(fill(Entry::denied(actor, r.reason.clone())))
            .await;
        return resp;
    }
    // Only changes by an authenticated caller: an unauthenticated request was
    // recorded as an authentication failure, and an unrouted one changed nothing.
    let (Some(kind), Some(actor)) = (change, note.actor.clone()) else {
        return resp;
    };
    let status = resp.status();
    let outcome = if status.is_success() {
        Outcome::Ok
    } else if status.is_server_error() {
        Outcome::Failed
    } else {
        Outcome::Refused
    };
    let mut entry = fill(Entry::new(kind, actor, outcome));
    if outcome != Outcome::Ok {
        entry = entry.reason(
            refusal
                .map(|r| r.reason)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
        );
        // Nothing was changed: written, fsynced with the next sync.
        record_written(state, entry).await;
        return resp;
    }
    match state.audit.record_async(entry).await {
        Ok(_) => resp,
        Err(e) => {
            tracing::error!(error = %e, %request, "AUDIT LOG WRITE FAILED after a change was stored: answering 503");
            let message = if state.audit.disk_full() {
                "The change was stored, but the node's disk is full and it could not be recorded in the audit log; further changes are refused until space is freed."
            } else {
                "The change was stored, but it could not be recorded in the audit log; further changes are refused until the audit log can be written."
            };
            unavailable(path, message).await
        }
    }
}

async fn record_written(state: &AppState, entry: Entry) {
    let log = state.audit.clone();
    let result =
        tokio::task::spawn_blocking(move || log.record_with(entry, Durability::Written)).await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "AUDIT LOG WRITE FAILED: a refused change is not in the audit log")
        }
        Err(e) => tracing::error!(error = %e, "AUDIT LOG WRITE FAILED: the audit worker failed"),
    }
}

/// Records a failed authentication on `parts`' request; `actor` is the user the
/// credential belongs to, when known. A failure to record is logged, not
/// returned: the request is refused either way.
pub(crate) async fn auth_failure(
    state: &AppState,
    parts: &axum::http::request::Parts,
    actor: &str,
    reason: &str,
) {
    let mut e = Entry::auth_failure(actor, reason).request(format!(
        "{} {}",
        parts.method,
        parts.uri.path()
    ));
    if let Some(r) = parts.extensions.get::<ClientAddr>() {
        e = e.remote(r.to_string());
    }
    state.audit.record_or_log_async(e).await;
}

/// Accounts for a request `limit` refused (`verdict`): counted in `/metrics`
/// every time; logged and audited as a denial of `actor` (with the client's
/// address) only for the first refusal of an episode, so a client hammering a
/// closed door cannot flood the audit log. Returns the `Retry-After` seconds.
pub(crate) async fn rate_limited(
    state: &AppState,
    parts: &axum::http::request::Parts,
    actor: &str,
    limit: crate::metrics::RateLimit,
    verdict: Verdict,
) -> u64 {
    state.metrics.rate_limited(limit);
    let retry_after = verdict.retry_after_secs().unwrap_or(1);
    if matches!(verdict, Verdict::Refused { first: true, .. }) {
        let client = parts.extensions.get::<ClientAddr>().copied();
        tracing::warn!(
            actor,
            limit = limit.label(),
            client = %client.map(|c| c.to_string()).unwrap_or_default(),
            retry_after,
            "rate limit reached: refusing until it refills"
        );
        let mut e = Entry::denied(actor, format!("rate limit ({})", limit.label()))
            .request(format!("{} {}", parts.method, parts.uri.path()));
        if let Some(c) = client {
            e = e.remote(c.to_string());
        }
        state.audit.record_or_log_async(e).await;
    }
    retry_after
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testkit::Kit;
    use axum::http::StatusCode;
    use serde_json::{json, Value};

    fn records(kit: &Kit) -> Vec<Value> {
        std::fs::read_to_string(kit.state.audit.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn find<'a>(recs: &'a [Value], kind: &str) -> Vec<&'a Value> {
        recs.iter().filter(|r| r["kind"] == kind).collect()
    }

    #[tokio::test]
    async fn changes_denials_and_auth_failures_are_recorded() {
        let kit = Kit::new();
        let (_, uuid) = kit
            .event(&kit.a, json!({"info": "audited", "distribution": "0"}))
            .await;
        let (st, _) = kit
            .call("POST", "/events/add", &kit.a_ro, Some(json!({"info": "x"})))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _) = kit.call("GET", "/events/index", "not-a-key", None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        // Org B cannot see A's org-only event: a refused change, not a denial.
        let (st, _) = kit
            .call(
                "POST",
                &format!("/attributes/add/{uuid}"),
                &kit.b,
                Some(json!({"type": "ip-dst", "value": "192.0.2.1"})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        // Reads are not recorded.
        let (st, _) = kit
            .call("GET", &format!("/events/view/{uuid}"), &kit.a, None)
            .await;
        assert_eq!(st, StatusCode::OK);

        let recs = records(&kit);
        let writes = find(&recs, "write");
        assert_eq!(writes.len(), 2, "{recs:#?}");
        assert_eq!(writes[0]["action"], "events.add");
        assert_eq!(writes[0]["actor"], "a@a.example");
        assert_eq!(writes[0]["subject"], uuid.as_str());
        assert_eq!(writes[0]["outcome"], "ok");
        assert_eq!(writes[0]["request"], "POST /events/add");
        assert_eq!(writes[1]["action"], "attributes.add");
        assert_eq!(writes[1]["actor"], "b@b.example");
        assert_eq!(writes[1]["outcome"], "refused");
        assert_eq!(writes[1]["reason"], "Invalid event.");
        let denied = find(&recs, "denied");
        assert_eq!(denied.len(), 1, "{recs:#?}");
        assert_eq!(denied[0]["actor"], "ro@a.example");
        assert_eq!(denied[0]["request"], "POST /events/add");
        assert_eq!(denied[0]["outcome"], "denied");
        let failures = find(&recs, "auth_failure");
        assert_eq!(failures.len(), 1, "{recs:#?}");
        assert_eq!(failures[0]["actor"], "unknown");
        assert_eq!(failures[0]["request"], "GET /events/index");
        assert!(
            !recs.iter().any(|r| r.to_string().contains("not-a-key")),
            "the key itself is never logged"
        );
        assert_eq!(recs.len(), 4, "{recs:#?}");
    }

    /// An audited change through the API, end to end in-process; compare with
    /// `audit::log::tests::measure_record_cost` for the audit's share.
    #[tokio::test]
    #[ignore = "a measurement, not a check: cargo test --release --lib measure_audited_write -- --ignored --nocapture"]
    async fn measure_audited_write() {
        let kit = Kit::new();
        let (_, uuid) = kit
            .event(&kit.a, json!({"info": "m", "distribution": "0"}))
            .await;
        let mut t = Vec::new();
        for i in 0..300 {
            let body =
                json!({"type": "ip-dst", "value": format!("198.51.{}.{}", i / 250, i % 250)});
            let s = std::time::Instant::now();
            let (st, _) = kit
                .call(
                    "POST",
                    &format!("/attributes/add/{uuid}"),
                    &kit.a,
                    Some(body),
                )
                .await;
            t.push(s.elapsed());
            assert_eq!(st, StatusCode::OK);
        }
        t.sort();
        println!(
            "attributes/add, audited: p50={:?} p99={:?}",
            t[t.len() / 2],
            t[t.len() * 99 / 100]
        );
    }

    #[tokio::test]
    async fn an_unwritable_log_refuses_changes_but_not_reads() {
        let kit = Kit::new();
        kit.event(&kit.a, json!({"info": "before", "distribution": "0"}))
            .await;
        kit.state.audit.break_writes_for_test();
        // The store takes the change, its record fails: 503, not a success.
        let (st, v) = kit
            .call(
                "POST",
                "/events/add",
                &kit.a,
                Some(json!({"info": "unaudited", "distribution": "0"})),
            )
            .await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["message"].as_str().unwrap().contains("audit log"), "{v}");
        assert_eq!(kit.state.store.event_count(), 2);
        assert!(kit.state.audit.is_failing());
        // From now on changes are refused before they reach the store.
        let (st, _) = kit
            .call(
                "POST",
                "/events/add",
                &kit.a,
                Some(json!({"info": "refused", "distribution": "0"})),
            )
            .await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kit.state.store.event_count(), 2);
        let (st, _) = kit.call("GET", "/events/index", &kit.a, None).await;
        assert_eq!(st, StatusCode::OK);
    }

    fn action(m: Method, p: &str) -> Option<(String, Option<String>)> {
        classify(&m, p).map(|k| (k.name().to_owned(), k.action().map(str::to_owned)))
    }

    #[test]
    fn reads_are_not_changes() {
        for (m, p) in [
            (Method::GET, "/events/index"),
            (Method::HEAD, "/events/view/1"),
            (Method::POST, "/events/view/1"),
            (Method::POST, "/events/index"),
            (Method::POST, "/events/restSearch"),
            (Method::POST, "/attributes/restSearch/csv"),
            (Method::POST, "/sightings/listSightings"),
            (Method::POST, "/sightings/index"),
            (Method::GET, "/admin/users/index"),
            (Method::POST, "/fed/v1/notify"),
        ] {
            assert_eq!(action(m.clone(), p), None, "{m} {p}");
        }
    }

    #[test]
    fn changes_are_named_by_controller_and_verb() {
        let w = |a: &str| Some(("write".to_owned(), Some(a.to_owned())));
        assert_eq!(action(Method::POST, "/events/add"), w("events.add"));
        assert_eq!(
            action(Method::DELETE, "/events/delete/5"),
            w("events.delete")
        );
        assert_eq!(
            action(Method::PUT, "/attributes/edit/5"),
            w("attributes.edit")
        );
        assert_eq!(
            action(Method::POST, "/tags/attachTagToObject"),
            w("tags.attachTagToObject")
        );
        assert_eq!(
            action(Method::POST, "/admin/users/edit/3"),
            Some(("user_change".into(), Some("users.edit".into())))
        );
        assert_eq!(
            action(Method::POST, "/admin/organisations/add"),
            Some(("user_change".into(), Some("organisations.add".into())))
        );
        assert_eq!(
            action(Method::POST, "/auth_keys/add/3"),
            Some(("key_change".into(), Some("auth_keys.add".into())))
        );
        // A route added later is audited by default.
        assert_eq!(action(Method::POST, "/admin/backup"), w("backup"));
    }
}
