//! `sluis verify FILE`: checks every seal in a MISP export offline, against the
//! trust list of a node's config and/or public keys given on the command line,
//! and names each event that fails and why.
//!
//! A key from the config is *pinned*: it vouches only for the origin org the
//! config lists it under, within its validity window. A key given with `--key`
//! comes without an org (what `sluis keys` prints is a key; an analyst holding
//! only that can still check that the file is what that key sealed), so it is
//! accepted for whichever origin org the seal names, and such events are marked
//! as verified with an unpinned origin. A key the config also lists keeps its
//! pinning, and a key the config revokes stays revoked.
//!
//! A file that cannot be read as MISP JSON is not "failed" but "cannot check":
//! the caller exits 2 rather than 1, with the parser's path to the bad field.

use super::CliError;
use crate::config::Config;
use crate::model::parse::parse_events;
use crate::model::Event;
use crate::seal::{parse_public_key, verify_event, KeyId, SealError, TrustList, VerifiedEvent};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use uuid::Uuid;

/// Whose seals `sluis verify` accepts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Pinned keys (and revocations) from the config.
    list: TrustList,
    /// `--key` keys the config does not pin, by id.
    unpinned: HashMap<KeyId, VerifyingKey>,
}

impl Trust {
    /// The config's trust list — its own key when it has `[signing]` and
    /// `node.org_uuid`, every `[[peer]]` and `[[origin]]`, `[trust] revoked` —
    /// plus `keys` (base64 public keys) unpinned. The embedded default config
    /// (no file) trusts nothing of its own.
    pub fn from_config(cfg: &Config, keys: &[String]) -> Result<Trust, CliError> {
        let own = match (&cfg.signing, cfg.node.org_uuid) {
            (Some(s), Some(org)) => Some((crate::seal::NodeKey::load(&s.key)?, org)),
            _ => None,
        };
        let list = crate::config::trust_list(cfg, own.as_ref().map(|(k, o)| (k, *o)))?;
        Trust::new(list, keys)
    }

    /// `list` plus `keys` (base64 public keys) unpinned.
    pub fn new(list: TrustList, keys: &[String]) -> Result<Trust, CliError> {
        let mut unpinned = HashMap::new();
        for k in keys {
            let bad = |reason: String| CliError::BadKey {
                key: k.clone(),
                reason,
            };
            let vk = parse_public_key(k).map_err(bad)?;
            // The checks `TrustList` makes on every key (a weak key, say), made
            // now so a bad `--key` is an error before anything is verified.
            TrustList::new()
                .add_key(Uuid::nil(), vk, None, None)
                .map_err(|e| bad(e.to_string()))?;
            let id = KeyId::of(&vk);
            if list.get(&id).is_none() {
                unpinned.insert(id, vk);
            }
        }
        Ok(Trust { list, unpinned })
    }

    /// Whether no key at all is trusted (every seal will fail as unknown).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.unpinned.is_empty()
    }

    /// Verifies one event; the flag says whether its origin org was pinned.
    /// An event exported by a node that received it shows the levels in
    /// effect there; the levels its origin signed are put back first.
    pub fn check(&self, event: &Event, now: u64) -> Result<(VerifiedEvent, bool), SealError> {
        let mut signed;
        let event = if event
            .seal
            .as_ref()
            .is_some_and(|s| !s.signed_distribution.is_empty())
        {
            signed = event.clone();
            crate::seal::restore_signed_levels(&mut signed);
            &signed
        } else {
            event
        };
        if let Some(seal) = &event.seal {
            let unpinned = seal
                .key_id
                .parse::<KeyId>()
                .ok()
                .filter(|id| !self.list.is_revoked(id))
                .and_then(|id| self.unpinned.get(&id));
            if let Some(vk) = unpinned {
                // A list of one: this key, for the org the seal names.
                let mut one = TrustList::new();
                one.add_key(seal.origin_org, *vk, None, None).map_err(|e| {
                    SealError::Malformed {
                        // Unreachable: `Trust::new` made the same checks on
                        // this key; reported rather than assumed.
                        field: "key_id",
                        reason: e.to_string(),
                    }
                })?;
                return verify_event(event, &one, now).map(|v| (v, false));
            }
        }
        verify_event(event, &self.list, now).map(|v| (v, true))
    }
}

/// The verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        uuid: Uuid,
        origin_org: Uuid,
        key_id: KeyId,
        /// Whether the key was pinned to the origin org by the config.
        pinned: bool,
    },
    Fail {
        uuid: Uuid,
        reason: String,
    },
}

/// Every event's verdict, in file order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub verdicts: Vec<Verdict>,
    /// No key was trusted at all (so every failure is "unknown key").
    pub no_trust: bool,
}

impl Report {
    /// `ok<TAB>uuid<TAB>origin org<TAB>key id` (plus a fifth field when the
    /// origin was not pinned) or `FAIL<TAB>uuid<TAB>reason`, one per event.
    pub fn lines(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .map(|v| match v {
                Verdict::Ok {
                    uuid,
                    origin_org,
                    key_id,
                    pinned,
                } => {
                    let mut l = format!("ok\t{uuid}\t{origin_org}\t{key_id}");
                    if !pinned {
                        l.push_str("\torigin org not pinned (key given with --key)");
                    }
                    l
                }
                Verdict::Fail { uuid, reason } => {
                    let u = if uuid.is_nil() {
                        "-".to_owned()
                    } else {
                        uuid.to_string()
                    };
                    format!("FAIL\t{u}\t{reason}")
                }
            })
            .collect()
    }

    pub fn failed(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Fail { .. }))
            .count()
    }

    pub fn all_ok(&self) -> bool {
        self.failed() == 0
    }

    /// What the operator should know beyond the per-event lines.
    pub fn notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.no_trust {
            n.push(
                "no key is trusted: give --config (a node's trust list) or --key (a public key \
                 from `sluis keys`)"
                    .to_owned(),
            );
        }
        let unpinned = self
            .verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Ok { pinned: false, .. }))
            .count();
        if unpinned > 0 {
            n.push(format!(
                "{unpinned} event(s) verified with a --key, which is trusted for whichever origin \
                 org a seal names: check that the origin orgs are the ones you expect"
            ));
        }
        n
    }

    /// `N events: X verified, Y failed`.
    pub fn summary(&self) -> String {
        let n = self.verdicts.len();
        format!(
            "{n} events: {} verified, {} failed",
            n - self.failed(),
            self.failed()
        )
    }
}

/// Verifies every event of the MISP JSON document `bytes` (at most
/// `max_document_bytes`) against `trust` at `now` (epoch seconds). Only an
/// unreadable document is an error; a bad seal is a [`Verdict::Fail`].
pub fn verify(
    bytes: &[u8],
    max_document_bytes: usize,
    trust: &Trust,
    now: u64,
) -> Result<Report, CliError> {
    let events = parse_events(bytes, max_document_bytes)?;
    let verdicts = events
        .iter()
        .map(|e| match trust.check(e, now) {
            Ok((v, pinned)) => Verdict::Ok {
                uuid: v.event_uuid,
                origin_org: v.origin_org,
                key_id: v.key_id,
                pinned,
            },
            Err(err) => Verdict::Fail {
                uuid: e.uuid,
                reason: err.to_string(),
            },
        })
        .collect();
    Ok(Report {
        verdicts,
        no_trust: trust.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_event;
    use crate::model::validate::validate_event;
    use crate::seal::{seal_event, NodeKey};

    const ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_0a0a);

    fn sealed_doc(key: &NodeKey, seeds: &[u64]) -> (Vec<Event>, Vec<u8>) {
        let now = crate::model::time::now_secs();
        let events: Vec<Event> = seeds
            .iter()
            .map(|s| {
                let bytes =
                    serde_json::to_vec(&crate::testdata::generated_event_json(*s, 4)).unwrap();
                let mut e = parse_event(&bytes, 1 << 26).unwrap();
                validate_event(&mut e, now).unwrap();
                seal_event(&mut e, key, ORG).unwrap();
                e
            })
            .collect();
        let doc = serde_json::json!({"response": events
            .iter()
            .map(|e| serde_json::json!({"Event": e}))
            .collect::<Vec<_>>()});
        (events, serde_json::to_vec(&doc).unwrap())
    }

    #[test]
    fn pinned_unpinned_and_failures() {
        let key = NodeKey::generate().unwrap();
        let (events, doc) = sealed_doc(&key, &[1, 2]);
        let now = crate::model::time::now_secs();

        let none = Trust::default();
        let r = verify(&doc, 1 << 26, &none, now).unwrap();
        assert!(r.no_trust && r.failed() == 2);
        assert!(
            r.lines()[0].contains("unknown signing key"),
            "{:?}",
            r.lines()
        );

        let bare = Trust::new(TrustList::new(), &[key.public_key_b64()]).unwrap();
        let r = verify(&doc, 1 << 26, &bare, now).unwrap();
        assert!(r.all_ok());
        assert_eq!(
            r.lines()[0],
            format!(
                "ok\t{}\t{ORG}\t{}\torigin org not pinned (key given with --key)",
                events[0].uuid,
                key.key_id()
            )
        );
        assert_eq!(r.notes().len(), 1);

        let mut list = TrustList::new();
        list.add(ORG, &key.public_key_b64(), None, None).unwrap();
        let pinned = Trust::new(list.clone(), &[key.public_key_b64()]).unwrap();
        let r = verify(&doc, 1 << 26, &pinned, now).unwrap();
        assert_eq!(
            r.lines()[1],
            format!("ok\t{}\t{ORG}\t{}", events[1].uuid, key.key_id())
        );
        assert!(r.notes().is_empty());

        // A revocation in the config beats a --key.
        let mut revoked = TrustList::new();
        revoked.revoke(&key.key_id().to_string()).unwrap();
        let t = Trust::new(revoked, &[key.public_key_b64()]).unwrap();
        let r = verify(&doc, 1 << 26, &t, now).unwrap();
        assert!(r.lines()[0].starts_with("FAIL\t") && r.lines()[0].contains("revoked"));

        // An edited value fails, naming the event.
        let text = String::from_utf8(doc).unwrap();
        let v = &events[1].attributes[0].value;
        let edited = text.replacen(&format!("\"{v}\""), "\"203.0.113.99\"", 1);
        assert_ne!(edited, text);
        let r = verify(edited.as_bytes(), 1 << 26, &pinned, now).unwrap();
        assert_eq!(r.failed(), 1);
        assert!(r.lines()[1].starts_with(&format!("FAIL\t{}\t", events[1].uuid)));
        assert_eq!(r.summary(), "2 events: 1 verified, 1 failed");

        assert!(matches!(
            Trust::new(TrustList::new(), &["bogus".into()]),
            Err(CliError::BadKey { .. })
        ));
        assert!(verify(b"{}", 1 << 26, &pinned, now).is_err());
    }

    /// An event exported by a node that received it shows narrowed levels,
    /// with the signed ones in the seal: it verifies, and a wrong signed
    /// level does not.
    #[test]
    fn events_shown_at_downgraded_levels_verify() {
        let key = NodeKey::generate().unwrap();
        let (mut events, _) = sealed_doc(&key, &[3]);
        let e = &mut events[0];
        let signed = e.distribution;
        crate::model::seal::send_levels(e, |_, level| level.saturating_sub(1));
        assert_ne!(e.distribution, signed);
        let doc = |e: &Event| {
            serde_json::to_vec(&serde_json::json!({"response": [{"Event": e}]})).unwrap()
        };
        let trust = Trust::new(TrustList::new(), &[key.public_key_b64()]).unwrap();
        let now = crate::model::time::now_secs();
        let r = verify(&doc(e), 1 << 26, &trust, now).unwrap();
        assert!(r.all_ok(), "{:?}", r.lines());
        let seal = e.seal.as_mut().unwrap();
        let lie = seal.signed_distribution.values_mut().next().unwrap();
        *lie = if *lie == 3 { 1 } else { 3 };
        let r = verify(&doc(e), 1 << 26, &trust, now).unwrap();
        assert_eq!(r.failed(), 1, "{:?}", r.lines());
    }
}
