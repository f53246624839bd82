//! The one receive path for sealed events, shared by `sluis import` and the
//! puller: verify against the trust list, choose the finisher the origin calls
//! for, refuse a change of origin, and store (with the local state of a record
//! received from a peer in the same atomic batch).
//!
//! | the incoming event | what is stored |
//! |---|---|
//! | no seal (a MISP event or feed; import only) | sealed by this node: the importing node vouches for it |
//! | a seal that fails against the trust list | nothing: the event is rejected whole |
//! | a valid seal by this node's org (its own record coming back) | re-sealed by this node over the exact stored (merged) version |
//! | a valid seal by another org | kept, if it still verifies on the exact stored (merged) version; rejected otherwise. Local tags and nested sightings, which the seal does not cover, are dropped, and the event is `locked` (remote-owned) |
//!
//! Only an event's origin may change it: a version whose origin differs from the
//! stored version's is rejected.

use crate::model::Event;
use crate::policy::federation::local_state_on_receipt;
use crate::seal::{restore_signed_levels, strip_unsealed, verify_event, Sealer, TrustList};
use crate::store::{local_record_of, Durability, Outcome, Store, StoreError};
use std::cell::Cell;
use uuid::Uuid;

/// Who vouches for what is received, and whom this node trusts.
pub struct Receiver<'a> {
    /// This node's sealer: seals unsealed events and the node's own.
    pub sealer: &'a Sealer,
    /// Whose seals are accepted (see [`crate::config::trust_list`]).
    pub trust: &'a TrustList,
}

impl Receiver<'_> {
    /// Verifies `ev`'s seal, if any, and stores it without flushing (the caller
    /// flushes before it acknowledges anything) with the finisher its origin calls
    /// for (see the module docs). `from` is the peer it came from: the event must
    /// then be sealed, and its effective distribution and origin peer are stored
    /// with it. `seal_failed` is set when the event is refused because of its
    /// seal, so the caller can log and count it apart.
    pub fn receive_event(
        &self,
        store: &Store,
        mut ev: Event,
        from: Option<&str>,
        seal_failed: &Cell<bool>,
    ) -> Result<Outcome, StoreError> {
        let now = crate::model::time::now_secs();
        let own = self.sealer.org();
        // The levels the origin signed go back in before anything is checked;
        // the levels it was sent at become this node's effective ones.
        let sent = restore_signed_levels(&mut ev);
        let origin = match &ev.seal {
            None if from.is_some() => {
                seal_failed.set(true);
                return Err(StoreError::Refused {
                    field: "seal",
                    reason: "seal: an event from a peer must be sealed".into(),
                });
            }
            None => own,
            Some(_) => {
                verify_event(&ev, self.trust, now)
                    .map_err(|e| {
                        seal_failed.set(true);
                        StoreError::Refused {
                            field: "seal",
                            reason: format!("seal: {e}"),
                        }
                    })?
                    .origin_org
            }
        };
        // The origin the stored version carries (none for an event not yet held,
        // or stored before seals existed). Checked again inside the finisher, under
        // the writer lock, on what is actually stored.
        let held: Option<Uuid> = store
            .get_event_header(&ev.uuid)?
            .and_then(|h| h.seal)
            .map(|s| s.origin_org);
        let origin_may_change = |e: &Event| match held {
            Some(held) if held != origin => {
                seal_failed.set(true);
                Err(StoreError::Refused {
                    field: "seal",
                    reason: format!(
                    "seal: event {} is held with origin org {held}; only that origin may change \
                     it (this version's origin would be {origin})",
                    e.uuid
                ),
                })
            }
            _ => Ok(()),
        };
        if origin == own && from.is_some() {
            // Our own record coming back through a peer (a triangle, a loop). A
            // copy no newer than ours teaches us nothing, and is no fault of the
            // peer (it may simply not have our latest version yet).
            if let Some(h) = store.get_event_header_any(&ev.uuid)? {
                if ev.timestamp <= h.timestamp {
                    return Ok(Outcome::Unchanged {
                        uuid: ev.uuid,
                        id: h.id.unwrap_or(0),
                    });
                }
            }
        }
        if origin == own {
            // Unsealed, or the node's own seal coming back: the node vouches for the
            // exact version stored, whatever the merge made of it. It is the
            // origin, so it records no received state.
            let finish = |e: &mut Event| {
                origin_may_change(e)?;
                self.sealer.seal(e).map_err(|x| StoreError::Seal {
                    what: "event",
                    reason: x.to_string(),
                })
            };
            return store.put_event_with(ev, Durability::Deferred, &finish);
        }
        // Another origin's record: keep only what its seal covers, mark it
        // remote-owned, and store it only if the seal covers the stored version.
        strip_unsealed(&mut ev);
        ev.locked = true;
        let finish = |e: &mut Event| {
            origin_may_change(e)?;
            verify_event(e, self.trust, now).map(|_| ()).map_err(|x| {
                seal_failed.set(true);
                StoreError::Refused {
                    field: "seal",
                    reason: format!(
                        "seal: the stored version would not match the origin's seal: {x}"
                    ),
                }
            })
        };
        let state = local_state_on_receipt(&ev, &sent, from).map_err(|e| StoreError::Refused {
            field: "distribution",
            reason: e.to_string(),
        })?;
        if from.is_none() && sent.is_empty() {
            // An import of the origin's own version: in effect as signed.
            return store.put_event_with(ev, Durability::Deferred, &finish);
        }
        let local = local_record_of(&ev, &state);
        store.put_event_received(ev, Durability::Deferred, &finish, &local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::seal::send_levels;
    use crate::model::Attribute;
    use crate::seal::{seal_event, NodeKey};
    use crate::store::StoreOptions;

    const A_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00a0);
    const B_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00b0);

    /// A's event: level 2, one attribute at 2, sealed by A.
    fn from_a(key: &NodeKey, n: u128) -> Event {
        let now = crate::model::time::now_secs();
        let mut e = Event::new("received");
        e.uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_0e00 | n);
        e.timestamp = now - 60;
        e.date = "2026-01-01".into();
        e.published = true;
        e.distribution = 2;
        let mut a = Attribute::new("domain", format!("r{n}.example"));
        a.uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0001_0000_0000 | n);
        a.timestamp = e.timestamp;
        a.distribution = 2;
        e.attributes.push(a);
        crate::model::validate::validate_event(&mut e, now).unwrap();
        seal_event(&mut e, key, A_ORG).unwrap();
        e
    }

    #[test]
    fn sent_levels_are_downgraded_kept_on_import_and_never_widened() {
        let a_key = NodeKey::generate().unwrap();
        let mut trust = TrustList::new();
        trust
            .add(A_ORG, &a_key.public_key_b64(), None, None)
            .unwrap();
        let sealer = Sealer::new(NodeKey::generate().unwrap(), B_ORG);
        let rx = Receiver {
            sealer: &sealer,
            trust: &trust,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let failed = Cell::new(false);
        let levels = |e: &Event| {
            let shown = store.get_event(&e.uuid).unwrap().unwrap();
            (shown.distribution, shown.attributes[0].distribution)
        };

        // From a peer, the attribute sent at 1: the event arrives as 1, the
        // attribute as 0, and the signed levels stay for the seal.
        let mut wire = from_a(&a_key, 1);
        let attr = wire.attributes[0].uuid;
        send_levels(&mut wire, |u, level| if *u == attr { 1 } else { level });
        rx.receive_event(&store, wire.clone(), Some("cert-a"), &failed)
            .unwrap();
        assert_eq!(levels(&wire), (1, 0));
        let signed = store.get_event_signed(&wire.uuid).unwrap().unwrap();
        assert_eq!(
            (signed.distribution, signed.attributes[0].distribution),
            (2, 2)
        );

        // Imported (no hop): as sent.
        let mut file = from_a(&a_key, 2);
        let attr = file.attributes[0].uuid;
        send_levels(&mut file, |u, level| if *u == attr { 0 } else { level });
        rx.receive_event(&store, file.clone(), None, &failed)
            .unwrap();
        assert_eq!(levels(&file), (2, 0));

        // A level wider than signed is refused, and nothing is stored.
        let mut wider = from_a(&a_key, 3);
        wider.distribution = 3;
        wider
            .seal
            .as_mut()
            .unwrap()
            .signed_distribution
            .insert(wider.uuid, 2);
        let err = rx
            .receive_event(&store, wider.clone(), Some("cert-a"), &failed)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("wider than the 2 its origin signed"),
            "{err}"
        );
        assert!(store.get_event(&wider.uuid).unwrap().is_none());
        assert!(!failed.get(), "a policy refusal, not a seal failure");
    }
}
