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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;
    use crate::seal::{seal_event_at, NodeKey};
    use crate::store::{Durability, StoreOptions};
    use std::collections::HashMap;

    const TS: u64 = 1_700_000_000;

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0001_0000_0000 | n)
    }

    /// One signed version (level 2, attributes 1 and 2 at level 2), and the
    /// copy of it holding only `keep`.
    fn copy(full: &Event, keep: &[u128]) -> Event {
        let mut e = full.clone();
        e.attributes
            .retain(|a| keep.iter().any(|n| uuid(*n) == a.uuid));
        e
    }

    fn local(event: u8, attrs: &[(u128, u8)]) -> LocalRecord {
        LocalRecord {
            event_distribution: Some(event).filter(|d| *d != 2),
            element_distribution: attrs
                .iter()
                .filter(|(_, d)| *d != 2)
                .map(|(n, d)| (uuid(*n), *d))
                .collect(),
            received_from: Some("peer".into()),
        }
    }

    /// A version that arrives along two paths is held at the widest level
    /// either gave, whichever came first, and a narrower copy after a wider
    /// one changes nothing.
    #[test]
    fn the_widest_level_any_path_gave_is_kept() {
        let mut full = Event::new("two paths");
        full.uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_0e00);
        full.timestamp = TS;
        full.date = "2023-11-14".into();
        full.published = true;
        full.distribution = 2;
        for n in [1, 2] {
            let mut a = Attribute::new("domain", format!("w{n}.example"));
            a.uuid = uuid(n);
            a.timestamp = TS;
            a.distribution = 2;
            full.attributes.push(a);
        }
        let key = NodeKey::generate().unwrap();
        seal_event_at(&mut full, &key, Uuid::from_u128(9), TS + 1).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let put = |e: Event, l: LocalRecord| {
            store
                .put_event_received(e, Durability::Flush, &|_| Ok(()), &l)
                .unwrap();
        };
        let held = |n: u128| {
            let state = store.local_state(&full).unwrap();
            (state.event_distribution, state.effective(&uuid(n), 2))
        };
        // The long path first: attribute 1 only, at 0.
        put(copy(&full, &[1]), local(0, &[(1, 0)]));
        assert_eq!(held(1), (0, 0));
        // The direct path: both attributes, at 1; attribute 1 widens, 2 is new.
        put(copy(&full, &[1, 2]), local(1, &[(1, 1), (2, 1)]));
        assert_eq!((held(1), held(2)), ((1, 1), (1, 1)));
        // The long path again, with nothing new: no narrowing.
        put(copy(&full, &[1]), local(0, &[(1, 0)]));
        assert_eq!((held(1), held(2)), ((1, 1), (1, 1)));
        // A copy with nothing new but a wider level for what it holds.
        put(copy(&full, &[2]), local(2, &[(2, 2)]));
        assert_eq!((held(1), held(2)), ((2, 1), (2, 2)));
        // Shown so on the API read.
        let shown = store.get_event(&full.uuid).unwrap().unwrap();
        let levels: HashMap<Uuid, u8> = shown
            .attributes
            .iter()
            .map(|a| (a.uuid, a.distribution))
            .collect();
        assert_eq!(shown.distribution, 2);
        assert_eq!(levels, HashMap::from([(uuid(1), 1), (uuid(2), 2)]));
        assert_eq!(
            shown.seal.as_ref().unwrap().signed_distribution,
            std::collections::BTreeMap::from([(uuid(1), 2)])
        );
    }
}
