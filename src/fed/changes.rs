//! `GET /fed/v1/changes?after=<seq>&limit=<n>&wait=<s>`: this node's change log,
//! as the calling peer may receive it.
//!
//! Each change after the cursor becomes at most one kind of record, filtered for
//! the peer by [`outbound`] with the event's local state: the event version
//! (sealed, withheld elements removed), its sealed tombstones, or its sealed
//! sightings. What the peer may not receive is skipped, but `last_seq` still
//! covers it, so the peer's cursor moves past withheld changes and never asks for
//! them again. Pages are bounded ([`MAX_LIMIT`]); when nothing is new the request
//! waits up to `wait` seconds ([`MAX_WAIT`]) for a change.

use super::Peer;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::model::event::Wrapped;
use crate::policy::federation::{self, outbound, Decision};
use crate::seal::Tombstone;
use crate::store::record::ChangeKind;
use crate::store::{Store, StoreError};
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Page size when the peer does not ask for one.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page: bounds the memory and time one request takes.
pub const MAX_LIMIT: usize = 1000;
/// Longest long-poll, seconds: well below the server's request deadline.
pub const MAX_WAIT: u64 = 30;
/// How often a long-poll looks for a new change. Polling the last sequence (one
/// sled key) keeps every write path out of the feed's business.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    #[serde(default)]
    wait: u64,
}

/// `{"records": [{"seq", "kind", "record"}…], "last_seq", "more"}`.
pub async fn changes(
    State(state): State<AppState>,
    peer: Peer,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let deadline = Instant::now() + Duration::from_secs(q.wait.min(MAX_WAIT));
    while state.store.last_sequence()? <= q.after && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let store = state.store.clone();
    let to = federation::Peer {
        name: peer.config.name.clone(),
        org: peer.config.org_uuid,
    };
    let after = q.after;
    let page = crate::api::blocking(move || Ok(page(&store, &to, after, limit)?)).await?;
    tracing::debug!(
        peer = %peer.name(),
        after,
        last_seq = page["last_seq"].as_u64().unwrap_or(after),
        "changes page served"
    );
    Ok(Json(page))
}

/// Builds one page for `peer`.
pub fn page(
    store: &Store,
    peer: &federation::Peer,
    after: u64,
    limit: usize,
) -> Result<Value, StoreError> {
    let mut changes = store.changes_after(after, limit.saturating_add(1))?;
    let more = changes.len() > limit;
    changes.truncate(limit);
    let last_seq = changes.last().map_or(after, |(s, _)| *s);
    // The last version change of each event in the page: an earlier one would
    // send the same (current) version twice.
    let latest: HashMap<uuid::Uuid, u64> = changes
        .iter()
        .filter(|(_, c)| matches!(c.kind, ChangeKind::EventStored | ChangeKind::EventDeleted))
        .map(|(s, c)| (c.event, *s))
        .collect();
    let mut records = Vec::new();
    let mut push = |seq: u64, kind: &str, record: Value| {
        records.push(json!({"seq": seq, "kind": kind, "record": record}));
    };
    for (seq, c) in &changes {
        match c.kind {
            ChangeKind::EventStored => {
                if latest.get(&c.event) != Some(seq) {
                    continue;
                }
                let Some(ev) = store.get_event(&c.event)? else {
                    continue; // deleted since: its tombstone follows
                };
                let local = store.local_state(&ev)?;
                if let Decision::Send(out) = outbound(&ev, &local, peer) {
                    push(*seq, "event", to_value(&Wrapped { event: &out })?);
                }
            }
            // The deletion travels as the tombstone logged right after it.
            ChangeKind::EventDeleted => {}
            ChangeKind::TombstoneAdded => {
                let Some(head) = store.get_event_header_any(&c.event)? else {
                    continue;
                };
                let local = store.local_state(&head)?;
                if !matches!(outbound(&head, &local, peer), Decision::Send(_)) {
                    continue;
                }
                if let Some(raw) = store.tombstone_at(&c.event, *seq)? {
                    let t: Tombstone =
                        serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                            tree: "tombstones",
                            reason: e.to_string(),
                        })?;
                    push(*seq, "tombstone", to_value(&t)?);
                }
            }
            ChangeKind::SightingAdded => {
                let Some(ev) = store.get_event(&c.event)? else {
                    continue;
                };
                let local = store.local_state(&ev)?;
                let Decision::Send(out) = outbound(&ev, &local, peer) else {
                    continue;
                };
                for s in store.sightings_of(&c.event)? {
                    if s.date_sighting != c.timestamp
                        || !out.all_attributes().any(|a| a.uuid == s.attribute_uuid)
                    {
                        continue;
                    }
                    if let Some(raw) = store.sighting_seal(&c.event, &s.uuid)? {
                        let v: Value =
                            serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                                tree: "sighting_seals",
                                reason: e.to_string(),
                            })?;
                        push(*seq, "sighting", v);
                    }
                }
            }
        }
    }
    Ok(json!({"records": records, "last_seq": last_seq, "more": more}))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Rejected(format!("cannot serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, Event};
    use crate::store::record::LocalRecord;
    use crate::store::{Durability, StoreOptions};
    use uuid::Uuid;

    fn event(n: u128, dist: u8, ts: u64) -> Event {
        let mut e = Event::new("feed test");
        e.uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_0000 | n);
        e.timestamp = ts;
        e.date = "2023-11-14".into();
        e.published = true;
        e.distribution = dist;
        let mut a = Attribute::new("domain", format!("a{n}.example"));
        a.uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0001_0000_0000 | n);
        a.timestamp = ts;
        a.distribution = 5;
        e.attributes.push(a);
        e
    }

    fn peer(name: &str) -> federation::Peer {
        federation::Peer {
            name: name.into(),
            org: Uuid::from_u128(7),
        }
    }

    fn kinds(page: &Value) -> Vec<(u64, String)> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["seq"].as_u64().unwrap(),
                    r["kind"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn withheld_changes_advance_the_cursor_and_versions_go_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ts = 1_700_000_000;
        store.put_event(event(1, 3, ts), Durability::Flush).unwrap(); // seq 1
        store.put_event(event(2, 1, ts), Durability::Flush).unwrap(); // seq 2
        let mut newer = event(1, 3, ts + 5);
        newer.info = "feed test, edited".into();
        store.put_event(newer, Durability::Flush).unwrap(); // seq 3
        let received = LocalRecord {
            event_distribution: Some(1),
            received_from: Some("cert-b".into()),
            ..LocalRecord::default()
        };
        store
            .put_event_received(event(3, 2, ts), Durability::Flush, &|_| Ok(()), &received)
            .unwrap(); // seq 4

        let p = page(&store, &peer("cert-c"), 0, 100).unwrap();
        // Event 1 once (its latest change), event 2 (level 1) and event 3 (received
        // at 2, so effective 1) withheld; the cursor covers all four.
        assert_eq!(kinds(&p), vec![(3, "event".to_owned())]);
        assert_eq!(
            p["records"][0]["record"]["Event"]["info"],
            "feed test, edited"
        );
        assert_eq!(p["last_seq"], 4);
        assert_eq!(p["more"], false);

        // The local state is read back as stored.
        let e3 = store.get_event(&event(3, 2, ts).uuid).unwrap().unwrap();
        let local = store.local_state(&e3).unwrap();
        assert_eq!(local.event_distribution, 1);
        assert_eq!(local.received_from.as_deref(), Some("cert-b"));
        let e1 = store.get_event(&event(1, 3, ts).uuid).unwrap().unwrap();
        let local = store.local_state(&e1).unwrap();
        assert_eq!((local.event_distribution, local.received_from), (3, None));

        // Bounded pages: `more` until the end, the cursor moving on.
        let p = page(&store, &peer("cert-c"), 0, 1).unwrap();
        assert_eq!(
            (p["last_seq"].as_u64(), p["more"].as_bool()),
            (Some(1), Some(true))
        );
        assert_eq!(kinds(&p), vec![(1, "event".to_owned())]);
        let p = page(&store, &peer("cert-c"), 4, 10).unwrap();
        assert_eq!(
            (p["last_seq"].as_u64(), p["more"].as_bool()),
            (Some(4), Some(false))
        );
        assert!(kinds(&p).is_empty());
    }
}
