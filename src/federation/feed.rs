//! The changes feed's content: this node's change log, as one calling peer may
//! receive it, written line by line in the wire format ([`super::wire`]). The
//! HTTP endpoint that streams it (`GET /fed/v1/changes`) is `api::fed`.
//!
//! Each change after the cursor becomes at most one kind of record, filtered for
//! the peer by [`outbound`] with the event's local state: the event version
//! (sealed, withheld elements removed), its sealed tombstones, or its sealed
//! sightings. What the peer may not receive is skipped, but `last_seq` still
//! covers it, so the peer's cursor moves past withheld changes and never asks for
//! them again.
//!
//! Only durable changes are served ([`Store::durable_sequence`]): a change a
//! crash could still take back must not reach a peer, whose cursor would then
//! skip the different change that reuses its sequence number.
//!
//! Pages are bounded by records ([`MAX_LIMIT`]) and by attributes
//! ([`PAGE_ATTRIBUTES`], at least one record per page however large), and written
//! record by record, so a page of large events costs one event's memory, not a
//! page's.

use super::wire::{self, PageEnd, RecordKind};
use crate::model::event::Wrapped;
use crate::policy::federation::{self, outbound, Decision};
use crate::store::record::ChangeKind;
use crate::store::{Store, StoreError};
use crate::support::CaseStore;
use std::collections::HashMap;

/// Page size when the peer does not ask for one.
pub const DEFAULT_LIMIT: usize = 100;
/// Most records in a page: bounds the time one request takes.
pub const MAX_LIMIT: usize = 1000;
/// Attributes after which a page ends (with `more`): bounds the receiver's work
/// per page, so its cursor moves at least this often during a large sync.
pub const PAGE_ATTRIBUTES: usize = 50_000;
/// Longest long-poll, seconds: below the server's request deadline (the head
/// must be written within it) and the peers' client timeout.
pub const MAX_WAIT: u64 = 25;

/// Writes one page for `peer` after `after` through `emit` (one call per line,
/// the end line last; `emit` returns false when the receiver has gone, which
/// ends the page early). Returns the end marker written.
pub fn write_page(
    store: &Store,
    own_org: uuid::Uuid,
    peer: &federation::Peer,
    after: u64,
    limit: usize,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<PageEnd, StoreError> {
    let head = store.durable_sequence();
    let mut changes = store.changes_after(after, limit.saturating_add(1))?;
    changes.retain(|(s, _)| *s <= head);
    let mut more = changes.len() > limit;
    changes.truncate(limit);
    // The last version change of each event in the page: an earlier one would
    // send the same (current) version twice.
    let latest: HashMap<uuid::Uuid, u64> = changes
        .iter()
        .filter(|(_, c)| matches!(c.kind, ChangeKind::EventStored | ChangeKind::EventDeleted))
        .map(|(s, c)| (c.event, *s))
        .collect();
    let mut last_seq = after;
    let mut attributes = 0usize;
    for (seq, c) in &changes {
        if attributes >= PAGE_ATTRIBUTES {
            more = true;
            break;
        }
        match c.kind {
            ChangeKind::EventStored => {
                if latest.get(&c.event) == Some(seq) {
                    if let Some(ev) = store.get_event_signed(&c.event)? {
                        let local = store.local_state(&ev)?;
                        if let Decision::Send(out) = outbound(&ev, &local, peer) {
                            attributes += out.all_attributes().count().max(1);
                            let json = to_vec(&Wrapped { event: &out })?;
                            if !emit(wire::record_line(*seq, RecordKind::Event, &json)) {
                                return Ok(PageEnd {
                                    last_seq,
                                    more: true,
                                    head,
                                });
                            }
                        }
                    }
                    // else: deleted since; its tombstone follows.
                }
            }
            // The deletion travels as the tombstone logged right after it.
            ChangeKind::EventDeleted => {}
            // Incident-support records go only from their author's node to their
            // audience (`support::may_send`), never relayed.
            ChangeKind::CaseRecord => {
                if let Some(rec) = store.case_record(&c.event)? {
                    if crate::support::may_send(&rec, own_org, peer.org) {
                        let json = to_vec(&rec)?;
                        if !emit(wire::record_line(*seq, RecordKind::Case, &json)) {
                            return Ok(PageEnd {
                                last_seq,
                                more: true,
                                head,
                            });
                        }
                    }
                }
            }
            ChangeKind::TombstoneAdded => {
                if let Some(mut head_ev) = store.get_event_header_any(&c.event)? {
                    let local = store.local_state(&head_ev)?;
                    // A removal is news about a version the peer may hold even
                    // while the event is unpublished again (every edit
                    // unpublishes, the removal's own among them): judged as if
                    // published, for events that were published once (a never
                    // published event's tags never left, so their removal stays
                    // home too).
                    let ever_published = head_ev.published || head_ev.publish_timestamp > 0;
                    head_ev.published = true;
                    if ever_published
                        && matches!(outbound(&head_ev, &local, peer), Decision::Send(_))
                    {
                        if let Some(raw) = store.tombstone_at(&c.event, *seq)? {
                            check_json(&raw, "tombstones")?;
                            if !emit(wire::record_line(*seq, RecordKind::Tombstone, &raw)) {
                                return Ok(PageEnd {
                                    last_seq,
                                    more: true,
                                    head,
                                });
                            }
                        }
                    }
                }
            }
            ChangeKind::SightingAdded => {
                if let Some(ev) = store.get_event_signed(&c.event)? {
                    let local = store.local_state(&ev)?;
                    if let Decision::Send(out) = outbound(&ev, &local, peer) {
                        for s in store.sightings_of(&c.event)? {
                            if s.date_sighting != c.timestamp
                                || !out.all_attributes().any(|a| a.uuid == s.attribute_uuid)
                            {
                                continue;
                            }
                            if let Some(raw) = store.sighting_seal(&c.event, &s.uuid)? {
                                check_json(&raw, "sighting_seals")?;
                                if !emit(wire::record_line(*seq, RecordKind::Sighting, &raw)) {
                                    return Ok(PageEnd {
                                        last_seq,
                                        more: true,
                                        head,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        last_seq = *seq;
    }
    let end = PageEnd {
        last_seq,
        more,
        head,
    };
    emit(wire::end_line(end));
    Ok(end)
}

fn to_vec<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode {
        what: "feed record",
        reason: e.to_string(),
    })
}

/// A stored sealed record goes out as stored; it must at least be one JSON value
/// (and on one line), or it would corrupt the page.
fn check_json(raw: &[u8], tree: &'static str) -> Result<(), StoreError> {
    if raw.contains(&b'\n') {
        return Err(StoreError::Corrupt {
            tree,
            reason: "a stored sealed record spans lines".into(),
        });
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(raw).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, Event};
    use crate::store::record::LocalRecord;
    use crate::store::{Durability, StoreOptions};
    use serde_json::{json, Value};
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

    /// A page as one JSON value: `{"records": [...], "last_seq", "more"}`.
    fn page(store: &Store, peer: &federation::Peer, after: u64, limit: usize) -> Value {
        let mut lines = Vec::new();
        let end = write_page(store, Uuid::from_u128(1), peer, after, limit, &mut |l| {
            lines.push(l);
            true
        })
        .unwrap();
        let mut records = Vec::new();
        let (last, body) = lines.split_last().unwrap();
        for l in body {
            assert_eq!(l.last(), Some(&b'\n'));
            records.push(serde_json::from_slice::<Value>(l).unwrap());
        }
        let parsed: Value = serde_json::from_slice(last).unwrap();
        assert_eq!(parsed["end"]["last_seq"], end.last_seq);
        json!({"records": records, "last_seq": end.last_seq, "more": end.more})
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
        store.put_event(event(2, 0, ts), Durability::Flush).unwrap(); // seq 2
        let mut newer = event(1, 3, ts + 5);
        newer.info = "feed test, edited".into();
        store.put_event(newer, Durability::Flush).unwrap(); // seq 3
        let received = LocalRecord {
            event_distribution: Some(0),
            received_from: Some("cert-b".into()),
            ..LocalRecord::default()
        };
        store
            .put_event_received(event(3, 2, ts), Durability::Flush, &|_| Ok(()), &received)
            .unwrap(); // seq 4

        let p = page(&store, &peer("cert-c"), 0, 100);
        // Event 1 once (its latest change), event 2 (level 0) and event 3 (signed
        // 2, received narrowed to 0) withheld; the cursor covers all four.
        assert_eq!(kinds(&p), vec![(3, "event".to_owned())]);
        assert_eq!(
            p["records"][0]["record"]["Event"]["info"],
            "feed test, edited"
        );
        assert_eq!(p["last_seq"], 4);
        assert_eq!(p["more"], false);

        // The local state is read back as stored.
        let e3 = store.get_event(&event(3, 2, ts).uuid).unwrap().unwrap();
        assert_eq!(e3.distribution, 0, "shown at its effective level");
        let local = store.local_state(&e3).unwrap();
        assert_eq!(local.event_distribution, 0);
        assert_eq!(local.received_from.as_deref(), Some("cert-b"));
        let e1 = store.get_event(&event(1, 3, ts).uuid).unwrap().unwrap();
        let local = store.local_state(&e1).unwrap();
        assert_eq!((local.event_distribution, local.received_from), (3, None));

        // Bounded pages: `more` until the end, the cursor moving on.
        let p = page(&store, &peer("cert-c"), 0, 1);
        assert_eq!(
            (p["last_seq"].as_u64(), p["more"].as_bool()),
            (Some(1), Some(true))
        );
        assert_eq!(kinds(&p), vec![(1, "event".to_owned())]);
        let p = page(&store, &peer("cert-c"), 4, 10);
        assert_eq!(
            (p["last_seq"].as_u64(), p["more"].as_bool()),
            (Some(4), Some(false))
        );
        assert!(kinds(&p).is_empty());
    }
}
