//! Local state that is not part of any signed record: per event, what the node
//! received and how far it may travel (`local`); per peer, the pull cursor
//! (`peer_state`).

use super::record::{LocalRecord, PeerOut, PeerState};
use super::{corrupt, Store, StoreError};
use crate::model::Event;
use crate::policy::federation::LocalState;
use uuid::Uuid;

impl Store {
    /// The stored local record of `event`, if it has one (received events only).
    pub fn local_record(&self, event: &Uuid) -> Result<Option<LocalRecord>, StoreError> {
        match self.t.local.get(event.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| corrupt("local", e.to_string())),
            None => Ok(None),
        }
    }

    /// The [`LocalState`] [`crate::policy::federation::outbound`] decides with
    /// for `event` (its stored header): the recorded effective levels and origin
    /// peer, or — for an event this node originated or imported — the signed
    /// levels and no peer.
    pub fn local_state(&self, event: &Event) -> Result<LocalState, StoreError> {
        let mut state = LocalState::originated(event);
        if let Some(rec) = self.local_record(&event.uuid)? {
            if let Some(d) = rec.event_distribution {
                state.event_distribution = d;
            }
            state.element_distribution = rec.element_distribution;
            state.received_from = rec.received_from;
        }
        Ok(state)
    }

    /// The event header whether or not it is soft-deleted: a deletion must reach
    /// the peers that may have received the event, decided on its last header.
    pub fn get_event_header_any(&self, uuid: &Uuid) -> Result<Option<Event>, StoreError> {
        match self.stored_event(uuid)? {
            Some(rec) => self.assemble_header_any(uuid, &rec).map(Some),
            None => Ok(None),
        }
    }

    /// How far this node has pulled `peer`'s feed (the default: nothing yet).
    pub fn peer_state(&self, peer: &str) -> Result<PeerState, StoreError> {
        match self.t.peer_state.get(peer.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| corrupt("peer_state", e.to_string())),
            None => Ok(PeerState::default()),
        }
    }

    /// Persists `state` for `peer` and flushes: the cursor is written only after
    /// the records it covers were flushed, and must itself survive a crash so a
    /// restart does not pull them again.
    pub fn set_peer_state(&self, peer: &str, state: &PeerState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(|e| corrupt("peer_state", e.to_string()))?;
        let mut key = vec![super::T::PeerState as u8];
        key.extend_from_slice(peer.as_bytes());
        {
            // Under the writer lock, so a backup's walk never sees it change.
            let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            self.t.data.insert(key, bytes)?;
        }
        self.flush()
    }

    /// What `peer` last reported of this node's feed (the default: nothing yet).
    pub fn peer_out(&self, peer: &str) -> Result<PeerOut, StoreError> {
        match self.t.peer_out.get(peer.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| corrupt("peer_out", e.to_string())),
            None => Ok(PeerOut::default()),
        }
    }

    /// Persists `state` for `peer`. Not flushed: a lost report is merely
    /// operator information, and the next report replaces it.
    pub fn set_peer_out(&self, peer: &str, state: &PeerOut) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(|e| corrupt("peer_out", e.to_string()))?;
        let mut key = vec![super::T::PeerOut as u8];
        key.extend_from_slice(peer.as_bytes());
        self.t.data.insert(key, bytes)?;
        Ok(())
    }
}

/// The [`LocalRecord`] that stores `state` (the levels that differ from the
/// signed ones in `event`, and the peer).
pub fn local_record_of(event: &Event, state: &LocalState) -> LocalRecord {
    LocalRecord {
        event_distribution: Some(state.event_distribution).filter(|d| *d != event.distribution),
        element_distribution: state.element_distribution.clone(),
        received_from: state.received_from.clone(),
    }
}
