//! Applying a changes page line by line, as it streams in: every record verified
//! and stored on its own, so one bad record is reported and counted while the
//! rest of the page is applied. Storage failures (the disk, not the record) stop
//! the page instead: the cursor must not move past records that were never
//! stored.
//!
//! The applier never flushes; the puller flushes once per page and only then
//! persists [`PageApplier::cursor`].

use super::receive::Receiver;
use crate::audit::{AuditError, AuditLog, Durability as AuditDurability, Entry};
use crate::federation::wire::{self, Line, PageEnd, RecordKind, Rejection};
use crate::model::parse::parse_event;
use crate::seal::{SealedSighting, Tombstone, TombstoneKind};
use crate::store::{Durability, Store, StoreError};
use serde_json::value::RawValue;
use std::cell::Cell;
use uuid::Uuid;

/// What became of a page's records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageReport {
    /// Records stored (or already held).
    pub accepted: u64,
    /// Records refused, with the reason (the first
    /// [`wire::Report::MAX_REJECTIONS`]; the rest only counted).
    pub rejected: Vec<Rejection>,
    /// Records refused in all.
    pub rejected_total: u64,
}

/// Whether an error is about the record (reject it, go on) rather than the store
/// (stop, retry the page later).
fn is_record_error(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Invalid(_) | StoreError::Refused { .. } | StoreError::NotNewer { .. }
    )
}

/// Applies the lines of one page from `peer`, in order.
pub struct PageApplier<'a> {
    store: &'a Store,
    receiver: &'a Receiver<'a>,
    peer: &'a str,
    max_bytes: usize,
    after: u64,
    last_record: Option<u64>,
    end: Option<PageEnd>,
    audit: Option<&'a AuditLog>,
    support: Option<(Uuid, Uuid, &'a crate::support::Notifier)>,
    pub report: PageReport,
}

impl<'a> PageApplier<'a> {
    pub fn new(
        store: &'a Store,
        receiver: &'a Receiver<'a>,
        peer: &'a str,
        after: u64,
        max_bytes: usize,
    ) -> Self {
        PageApplier {
            store,
            receiver,
            peer,
            max_bytes,
            after,
            last_record: None,
            end: None,
            audit: None,
            support: None,
            report: PageReport::default(),
        }
    }

    /// Accepts incident-support case records for this node of organisation
    /// `own` from the peer of organisation `peer_org`, telling `notifier` of
    /// new ones. Without this, case records are refused.
    pub fn support(
        mut self,
        own: Uuid,
        peer_org: Uuid,
        notifier: &'a crate::support::Notifier,
    ) -> Self {
        self.support = Some((own, peer_org, notifier));
        self
    }

    /// Records every verdict in `audit` (written, not yet synced: the puller
    /// syncs the log once per page, before it moves the cursor).
    pub fn audited(mut self, audit: &'a AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The longest line accepted: a record of the largest document plus framing.
    pub fn max_line(&self) -> usize {
        self.max_bytes.saturating_add(wire::LINE_OVERHEAD)
    }

    /// The end marker, once the page's last line has been applied.
    pub fn end(&self) -> Option<PageEnd> {
        self.end
    }

    /// Where the cursor may move once what was applied is flushed: the page's
    /// `last_seq` if it ended properly; else just before the last record applied
    /// (every change before it was sent or withheld, while one change may yield
    /// several lines — sightings — so its own may be incomplete, and records are
    /// idempotent to apply again); else where it was.
    pub fn cursor(&self) -> u64 {
        match (self.end, self.last_record) {
            (Some(end), _) => end.last_seq.max(self.after),
            (None, Some(seq)) => seq.saturating_sub(1).max(self.after),
            (None, None) => self.after,
        }
    }

    /// A line too long to be read (it was skipped unread): refused, reported.
    pub fn oversized(&mut self, len: usize) -> Result<(), ApplyError> {
        self.reject(
            0,
            "unknown",
            None,
            format!(
                "line of {len} bytes exceeds this node's limit of {}",
                self.max_line()
            ),
        )
    }

    /// Applies one line. `Err` only for storage failures and protocol breaches
    /// (lines after the end, sequences going backwards), which end the page.
    pub fn line(&mut self, bytes: &[u8]) -> Result<(), ApplyError> {
        if self.end.is_some() {
            return Err(ApplyError::Protocol("a line after the page's end".into()));
        }
        let line = match wire::parse_line(bytes, self.max_line()) {
            Ok(l) => l,
            Err(e) => {
                return self.reject(0, "unknown", None, format!("undecodable line: {e}"));
            }
        };
        match line {
            Line::End(end) => {
                if end.last_seq < self.after || self.last_record.is_some_and(|s| end.last_seq < s) {
                    return Err(ApplyError::Protocol(format!(
                        "the page ends at {} but started after {} and carried records up to {:?}",
                        end.last_seq, self.after, self.last_record
                    )));
                }
                self.end = Some(end);
                Ok(())
            }
            Line::Record { seq, kind, record } => {
                if seq <= self.after || self.last_record.is_some_and(|s| seq < s) {
                    return Err(ApplyError::Protocol(format!(
                        "record {seq} out of order (after {}, last {:?})",
                        self.after, self.last_record
                    )));
                }
                let result = match kind {
                    RecordKind::Event => self.event(record),
                    RecordKind::Tombstone => self.tombstone(record),
                    RecordKind::Sighting => self.sighting(record),
                    RecordKind::Case => self.case(record),
                    RecordKind::Unknown => Err::<Uuid, _>((
                        None,
                        StoreError::Refused {
                            field: "a",
                            reason: "a record kind this node does not know".into(),
                        },
                    )),
                };
                match result {
                    Ok(uuid) => {
                        self.report.accepted += 1;
                        if let Some(a) = self.audit {
                            let entry =
                                Entry::sync_accepted(self.peer, format!("{} {seq}", kind.as_str()))
                                    .event(uuid);
                            a.record_with(entry, AuditDurability::Written)?;
                        }
                    }
                    Err((event, e)) if is_record_error(&e) => {
                        self.reject(seq, kind.as_str(), event, e.to_string())?
                    }
                    Err((_, e)) => return Err(ApplyError::Store(e)),
                }
                self.last_record = Some(seq);
                Ok(())
            }
        }
    }

    fn reject(
        &mut self,
        seq: u64,
        kind: &str,
        event: Option<Uuid>,
        reason: String,
    ) -> Result<(), ApplyError> {
        tracing::warn!(peer = self.peer, seq, kind, event = ?event, reason = %reason, "record rejected");
        if let Some(a) = self.audit {
            let mut entry = Entry::sync_rejected(self.peer, format!("{kind} {seq}"), &reason);
            if let Some(u) = event {
                entry = entry.event(u);
            }
            a.record_with(entry, AuditDurability::Written)?;
        }
        self.report.rejected_total += 1;
        if self.report.rejected.len() < wire::Report::MAX_REJECTIONS {
            self.report.rejected.push(Rejection {
                seq,
                kind: kind.to_owned(),
                event,
                reason,
            });
        }
        Ok(())
    }

    fn event(&self, record: &RawValue) -> Result<Uuid, (Option<Uuid>, StoreError)> {
        let ev = parse_event(record.get().as_bytes(), self.max_bytes).map_err(|e| {
            (
                None,
                StoreError::Refused {
                    field: "record",
                    reason: e.to_string(),
                },
            )
        })?;
        let uuid = ev.uuid;
        let outcome = self
            .receiver
            .receive_event(self.store, ev, Some(self.peer), &Cell::new(false))
            .map_err(|e| (Some(uuid), e))?;
        tracing::debug!(peer = self.peer, event = %outcome.uuid(), outcome = outcome.label(), "event received");
        Ok(uuid)
    }

    /// A tombstone is applied only when its origin is the origin of the event as
    /// held here: only the origin may delete, or untag, what it vouches for.
    fn tombstone(&self, record: &RawValue) -> Result<Uuid, (Option<Uuid>, StoreError)> {
        let t: Tombstone = serde_json::from_str(record.get()).map_err(|e| {
            (
                None,
                StoreError::Refused {
                    field: "tombstone",
                    reason: format!("tombstone: {e}"),
                },
            )
        })?;
        let fail = |e: StoreError| (Some(t.event_uuid), e);
        t.verify(self.receiver.trust, crate::model::time::now_secs())
            .map_err(|e| {
                fail(StoreError::Refused {
                    field: "tombstone",
                    reason: format!("tombstone seal: {e}"),
                })
            })?;
        let Some(head) = self
            .store
            .get_event_header_any(&t.event_uuid)
            .map_err(fail)?
        else {
            // Never held here: nothing to delete or untag, and nothing to forward.
            return Ok(t.event_uuid);
        };
        let held = head.seal.as_ref().map(|s| s.origin_org);
        if held != Some(t.origin_org) {
            return Err(fail(StoreError::Refused {
                field: "tombstone",
                reason: format!(
                    "tombstone: event {} is held with origin {}, the tombstone is by {}",
                    t.event_uuid,
                    held.map_or_else(|| "-".into(), |u| u.to_string()),
                    t.origin_org
                ),
            }));
        }
        let raw = record.get().as_bytes().to_vec();
        match &t.kind {
            TombstoneKind::EventDeleted => {
                if self.store.is_deleted(&t.event_uuid).map_err(fail)? {
                    return Ok(t.event_uuid); // already applied (a replay, or a second path)
                }
                self.store
                    .delete_event_with(&t.event_uuid, Durability::Deferred, &|_| {
                        Ok(Some(raw.clone()))
                    })
                    .map_err(fail)?;
                Ok(t.event_uuid)
            }
            // The removal itself reaches this node as the origin's newer sealed
            // version without the tag (a receiver cannot edit a sealed version).
            // The tombstone is kept and forwarded so every node holds the origin's
            // signed word that the tag was withdrawn, and when.
            TombstoneKind::TagRemoved { .. } => {
                if self
                    .store
                    .tombstones_of(&t.event_uuid)
                    .map_err(fail)?
                    .iter()
                    .any(|held| held.as_slice() == raw.as_slice())
                {
                    return Ok(t.event_uuid); // already held
                }
                self.store
                    .add_tombstone(&t.event_uuid, t.timestamp, raw)
                    .map_err(fail)?;
                Ok(t.event_uuid)
            }
        }
    }

    fn case(&self, record: &RawValue) -> Result<Uuid, (Option<Uuid>, StoreError)> {
        let Some((own, peer_org, notifier)) = self.support else {
            return Err((
                None,
                StoreError::Refused {
                    field: "case",
                    reason: "case records are not accepted on this path".into(),
                },
            ));
        };
        let rec: crate::support::CaseRecord = serde_json::from_str(record.get()).map_err(|e| {
            (
                None,
                StoreError::Refused {
                    field: "case",
                    reason: format!("case record: {e}"),
                },
            )
        })?;
        let now = crate::model::time::now_secs();
        match crate::support::receive::receive(
            self.store,
            self.receiver.trust,
            own,
            peer_org,
            &rec,
            now,
        ) {
            Ok(Some(n)) => {
                notifier.notice(n);
                Ok(rec.case)
            }
            Ok(None) => Ok(rec.case),
            Err(crate::support::SupportError::Store(e)) => Err((Some(rec.case), e)),
            Err(e) => Err((
                Some(rec.case),
                StoreError::Refused {
                    field: "case",
                    reason: format!("case record {}: {e}", rec.uuid),
                },
            )),
        }
    }

    fn sighting(&self, record: &RawValue) -> Result<Uuid, (Option<Uuid>, StoreError)> {
        let s: SealedSighting = serde_json::from_str(record.get()).map_err(|e| {
            (
                None,
                StoreError::Refused {
                    field: "sighting",
                    reason: format!("sighting: {e}"),
                },
            )
        })?;
        let fail = |e: StoreError| (Some(s.event_uuid), e);
        s.verify(self.receiver.trust, crate::model::time::now_secs())
            .map_err(|e| {
                fail(StoreError::Refused {
                    field: "sighting",
                    reason: format!("sighting seal: {e}"),
                })
            })?;
        let raw = record.get().as_bytes().to_vec();
        self.store
            .add_sighting(&s.event_uuid, s.sighting.clone(), Some(raw))
            .map_err(fail)?;
        Ok(s.event_uuid)
    }
}

/// Why a page stopped being applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("protocol: {0}")]
    Protocol(String),
    /// The audit log could not record a verdict: the page stops, as for a
    /// storage failure (nothing is applied unaudited past this point).
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
}
