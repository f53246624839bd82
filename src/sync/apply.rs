//! Applying one changes page: every record verified and stored on its own, so one
//! bad record is reported and counted while the rest of the page is applied.
//! Storage failures (the disk, not the record) abort the page instead: the
//! cursor must not move past records that were never stored.

use super::client::FeedPage;
use super::receive::Receiver;
use crate::model::parse::parse_event;
use crate::seal::{SealedSighting, Tombstone, TombstoneKind};
use crate::store::{Durability, Store, StoreError};
use std::cell::Cell;

/// What became of a page's records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageReport {
    /// Records stored (or already held).
    pub accepted: usize,
    /// `(seq, reason)` of each record refused.
    pub rejected: Vec<(u64, String)>,
}

/// Whether an error is about the record (reject it, go on) rather than the store
/// (stop, retry the page later).
fn is_record_error(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Invalid(_) | StoreError::Rejected(_) | StoreError::NotNewer { .. }
    )
}

/// Applies `page` from `peer` without the final flush (the caller flushes, then
/// persists the cursor).
pub fn apply_page(
    store: &Store,
    receiver: &Receiver<'_>,
    peer: &str,
    page: &FeedPage,
    max_bytes: usize,
) -> Result<PageReport, StoreError> {
    let mut report = PageReport::default();
    for r in &page.records {
        let result = match r.kind.as_str() {
            "event" => apply_event(store, receiver, peer, &r.record, max_bytes),
            "tombstone" => apply_tombstone(store, receiver, &r.record),
            "sighting" => apply_sighting(store, receiver, &r.record),
            other => Err(StoreError::Rejected(format!(
                "unknown record kind {other:?}"
            ))),
        };
        match result {
            Ok(()) => report.accepted += 1,
            Err(e) if is_record_error(&e) => {
                tracing::warn!(peer, seq = r.seq, kind = %r.kind, reason = %e, "record rejected");
                report.rejected.push((r.seq, e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

fn apply_event(
    store: &Store,
    receiver: &Receiver<'_>,
    peer: &str,
    record: &serde_json::Value,
    max_bytes: usize,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Rejected(e.to_string()))?;
    let ev = parse_event(&bytes, max_bytes).map_err(|e| StoreError::Rejected(e.to_string()))?;
    let outcome = receiver.receive_event(store, ev, Some(peer), &Cell::new(false))?;
    tracing::debug!(peer, event = %outcome.uuid(), outcome = outcome.label(), "event received");
    Ok(())
}

/// A deletion is applied only when the tombstone's origin is the origin of the
/// event as held here: only the origin may delete what it vouches for.
fn apply_tombstone(
    store: &Store,
    receiver: &Receiver<'_>,
    record: &serde_json::Value,
) -> Result<(), StoreError> {
    let t: Tombstone = serde_json::from_value(record.clone())
        .map_err(|e| StoreError::Rejected(format!("tombstone: {e}")))?;
    t.verify(receiver.trust, crate::model::time::now_secs())
        .map_err(|e| StoreError::Rejected(format!("tombstone seal: {e}")))?;
    match &t.kind {
        TombstoneKind::EventDeleted => {
            let Some(head) = store.get_event_header(&t.event_uuid)? else {
                return Ok(()); // unknown here, or already deleted
            };
            let held = head.seal.map(|s| s.origin_org);
            if held != Some(t.origin_org) {
                return Err(StoreError::Rejected(format!(
                    "tombstone: event {} is held with origin {}, the tombstone is by {}",
                    t.event_uuid,
                    held.map_or_else(|| "-".into(), |u| u.to_string()),
                    t.origin_org
                )));
            }
            let raw = serde_json::to_vec(&t).map_err(|e| StoreError::Rejected(e.to_string()))?;
            store.delete_event_with(&t.event_uuid, Durability::Deferred, &|_| {
                Ok(Some(raw.clone()))
            })?;
            Ok(())
        }
        TombstoneKind::TagRemoved { .. } => Err(StoreError::Rejected(
            "tombstone: tag removals from peers are not applied yet".into(),
        )),
    }
}

fn apply_sighting(
    store: &Store,
    receiver: &Receiver<'_>,
    record: &serde_json::Value,
) -> Result<(), StoreError> {
    let s: SealedSighting = serde_json::from_value(record.clone())
        .map_err(|e| StoreError::Rejected(format!("sighting: {e}")))?;
    s.verify(receiver.trust, crate::model::time::now_secs())
        .map_err(|e| StoreError::Rejected(format!("sighting seal: {e}")))?;
    let raw = serde_json::to_vec(&s).map_err(|e| StoreError::Rejected(e.to_string()))?;
    store.add_sighting(&s.event_uuid, s.sighting.clone(), Some(raw))?;
    Ok(())
}
