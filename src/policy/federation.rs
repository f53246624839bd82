//! What one sluis node may send to another: the distribution rules of docs/design.md §5
//! as a pure function over a stored event, this node's local state about it, and
//! the receiving peer.
//!
//! # The rules (MISP's, docs/misp-rules.md §2.3)
//!
//! | level | name | leaves this node? |
//! |---|---|---|
//! | 0 | your organisation only | never |
//! | 1 | this community only | to direct peers; it arrives there as 0, so it stops there |
//! | 2 | connected communities | to direct peers; it arrives there as 1, so it goes one hop more, as 0 |
//! | 3 | all communities | everywhere, unchanged |
//! | 4 | sharing group | only to peers whose org is a member of the group, unchanged |
//! | 5 | inherit (elements only) | as its parent (object, else event) |
//!
//! This is MISP's pull rule (`Server::__updatePulledEventBeforeInsert`: the
//! receiver downgrades 1 → 0 and 2 → 1), which is how sluis nodes exchange:
//! every node pulls its peers' feeds. (MISP's push path never sends a 1 at all,
//! so under MISP push a 2 stops after one hop; docs/federation.md.)
//!
//! Only published events travel. Content tagged `tlp:red` (on the event or on the
//! element) leaves only under a sharing group. Tags that do not travel (local,
//! local-only, non-exportable) never leave. Nothing goes back to the peer it came
//! from. Children (attributes, objects, object references, reports) are filtered
//! element by element with the same rules.
//!
//! # Signed values and effective values
//!
//! The origin's seal covers every element's signed form, including its
//! `distribution` *as the origin set it* (docs/design.md §4). Each node keeps
//! the **effective** level as local state ([`LocalState`]): on receipt, the
//! level it was sent at, downgraded ([`local_state_on_receipt`]). [`outbound`]
//! decides with both, and sends each element **at its effective level**, as
//! MISP does, noting the signed level in the seal where they differ
//! ([`crate::model::seal::send_levels`]); the receiver puts the signed levels back
//! to verify ([`crate::model::seal::restore_signed_levels`]) and refuses a sent level
//! wider than the signed one ([`narrows`]). The API shows the effective level.
//! Otherwise what [`outbound`] changes in the event is limited to what the
//! seal does not cover, so the filtered event still verifies:
//!
//! - whole elements are removed (an object with its attributes and references; a
//!   reference whose target was removed) — the seal lists digests, and absent
//!   elements are allowed;
//! - non-travelling tags are dropped — they are outside every signed form;
//! - sightings nested in attributes are dropped — they travel as their own sealed
//!   records, under the sightings policy, and a receiver drops nested ones anyway
//!   (`seal::strip_unsealed`);
//! - `attribute_count` is recomputed from what is sent — derived, unsigned.
//!
//! Every element that remains is otherwise exactly the stored one (checked by the
//! property tests, which also re-verify the seal after filtering).
//!
//! # Decisions where the rules are silent (and why)
//!
//! - **Local state narrows, never widens.** An element must pass under its signed
//!   level *and* under its effective level. Local state exists to record
//!   downgrades (a received 2 is 1 here) or an operator's local restriction; a
//!   corrupted or hand-edited entry that claims a wider level than the origin
//!   signed must not leak what the origin restricted.
//! - **Inherit is a conjunction along the ancestry.** An element passes only if
//!   the event, its object (for object attributes) and the element itself all
//!   pass; 5 adds no condition of its own. This is MISP's "most restrictive along
//!   the ancestry", and it is what makes an object withheld withhold its
//!   attributes, and a child with 3 under a sharing-group event go only to members.
//!   An event cannot inherit: an event-level 5 (or any level above 5) is invalid
//!   and withheld.
//! - **Sharing groups fail closed.** Level 4 without the group object, an inactive
//!   group, or a peer with a nil org uuid never passes. Membership is by
//!   organisation uuid ([`SharingGroup::has_org`], which includes the group's
//!   owner org); `SharingGroupServer` entries and `all_orgs` are ignored, as
//!   docs/misp-rules.md §2.4 recommends ("require R ∈ orgs"). The group objects
//!   embedded in the event are taken as this node's current view of the groups:
//!   only their uuid is signed, so the caller must give the groups as stored
//!   *here*, not as some peer described them.
//! - **TLP:RED.** Content is red if a `tlp:red` tag (matched like all tags, trimmed
//!   and case-insensitive) sits on the event or on the element — *including* local
//!   tags: a local `tlp:red` is how an operator marks received content red for
//!   onward sharing without touching the signed record (the local tag itself is
//!   still stripped). Red content passes only if some level along its ancestry
//!   (signed or effective) is 4 — and since every level must pass, every such
//!   group has the peer as a member. So under a red event with a sharing group,
//!   children pass exactly when their own levels allow too.
//! - **Header-only events are sent.** If the event itself may go but every child
//!   is withheld, the header still goes. The receiver's merge rule keeps elements
//!   a newer version does not mention, so withholding would leave the peer on a
//!   stale header (old info, tags, or a distribution since narrowed); and an event
//!   the peer may see is information in itself (MISP does the same; its issue
//!   #10225, a MISP receiver refusing empty events with 403, concerns the future
//!   MISP-interop sender, which may skip empty events for MISP peers).
//! - **References travel only with their target.** A reference is kept only if
//!   the attribute or object it points to is sent too (as in
//!   [`super::visibility::redact_event`]): a dangling reference is useless to the
//!   peer and would reveal the uuid of something it may not see.
//! - **Soft-deleted elements travel** under the same rules: the deletion is the
//!   origin's signed statement and must reach whoever has the element.
//! - **Echo** is checked first, so a record from a peer is reported as an echo to
//!   that peer whatever else holds. Not sending the same version twice (UUID +
//!   timestamp) is the changes feed's cursor's job, not this module's.

use crate::model::attribute::INHERIT;
use crate::model::{Attribute, Event, SharingGroup, Tag};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Level 0: the owner organisation only.
pub const ORG_ONLY: u8 = 0;
/// Level 1: this community (this node) only.
pub const COMMUNITY: u8 = 1;
/// Level 2: connected communities, one hop.
pub const CONNECTED: u8 = 2;
/// Level 3: all communities.
pub const ALL: u8 = 3;
/// Level 4: the sharing group's members.
pub const SHARING_GROUP: u8 = 4;

/// The tag (by [`Tag::key`]) that restricts content to named recipients.
pub const TLP_RED: &str = "tlp:red";

/// What this node knows locally about a stored event version: not part of the
/// sealed record, kept by the store next to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalState {
    /// Effective distribution of the event here (a signed 2 received from a peer
    /// is 1 here).
    pub event_distribution: u8,
    /// Effective distribution per element uuid (attribute, object, report), where
    /// it differs from the signed value; absent means "as signed".
    pub element_distribution: HashMap<Uuid, u8>,
    /// The configured name of the peer this version was received from (`None` if
    /// it was created or imported here).
    pub received_from: Option<String>,
}

impl LocalState {
    /// The state of an event created or imported on this node: every level in
    /// effect as signed, received from nobody.
    pub fn originated(event: &Event) -> LocalState {
        LocalState {
            event_distribution: event.distribution,
            element_distribution: HashMap::new(),
            received_from: None,
        }
    }

    /// The effective level of the element `uuid` whose signed level is `signed`.
    pub fn effective(&self, uuid: &Uuid, signed: u8) -> u8 {
        self.element_distribution
            .get(uuid)
            .copied()
            .unwrap_or(signed)
    }
}

/// A configured peer: its name (what [`LocalState::received_from`] records) and
/// the uuid of its organisation (what sharing-group membership is checked by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub org: Uuid,
}

/// A peer sent an element at a level wider than its origin signed: a hop may
/// narrow what the origin allowed, never widen it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "element {uuid} was sent at distribution {sent}, wider than the {signed} its origin signed"
)]
pub struct Widened {
    pub uuid: Uuid,
    pub signed: u8,
    pub sent: u8,
}

/// Why an event is not sent to a peer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The version came from this very peer.
    Echo,
    /// Only published events travel.
    Unpublished,
    /// The event's level (signed or effective; the one that fails) does not leave
    /// this node: 0, 1, or invalid for an event (5, above 5).
    Distribution { level: u8 },
    /// Level 4 but the event carries no sharing group: fail closed.
    MissingSharingGroup,
    /// Level 4 and the peer's org is not a member (or the group is inactive).
    NotInSharingGroup,
    /// The event is tagged `tlp:red` and is not restricted to a sharing group.
    TlpRedWithoutSharingGroup,
}

/// What to do with one event for one peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send this, the event as the peer may receive it. Boxed because an event is
    /// far larger than a reason.
    Send(Box<Event>),
    Withhold(Reason),
}

/// The effective distribution a node records for a level received from a direct
/// peer (MISP's pull rule): 1 (this community) becomes 0 (the organisation
/// only), so it goes no further; 2 (connected communities) becomes 1, so it
/// goes one hop more; every other level is kept.
pub fn effective_on_receipt(sent: u8) -> u8 {
    match sent {
        COMMUNITY => ORG_ONLY,
        CONNECTED => COMMUNITY,
        other => other,
    }
}

/// Whether `sent` is `signed` or a narrowing of it a hop may make: one of the
/// community levels 0–3 replaced by a lower one. A sharing group (4) and
/// inherit (5) are never rewritten.
pub fn narrows(signed: u8, sent: u8) -> bool {
    sent == signed || (signed <= ALL && sent < signed)
}

/// The [`LocalState`] for an event received from the peer named `peer`:
/// `event` holds the levels its origin signed (restored by
/// [`crate::model::seal::restore_signed_levels`], which also gave `sent`, the levels
/// the peer sent where they differ), and each element's effective level here
/// is its sent level downgraded by [`effective_on_receipt`] (only those that
/// differ from the signed level are recorded). A sent level wider than the
/// signed one is refused. Without a peer (`sluis import` of a file some node
/// exported), the levels stay as sent: no hop was made, and an import must
/// not widen what the exporting node showed.
pub fn local_state_on_receipt(
    event: &Event,
    sent: &HashMap<Uuid, u8>,
    peer: Option<&str>,
) -> Result<LocalState, Widened> {
    let effective = |uuid: Uuid, signed: u8| -> Result<u8, Widened> {
        let got = sent.get(&uuid).copied().unwrap_or(signed);
        if !narrows(signed, got) {
            return Err(Widened {
                uuid,
                signed,
                sent: got,
            });
        }
        Ok(match peer {
            Some(_) => effective_on_receipt(got),
            None => got,
        })
    };
    let mut element_distribution = HashMap::new();
    for (uuid, signed) in event.element_levels() {
        let level = effective(uuid, signed)?;
        if level != signed {
            element_distribution.insert(uuid, level);
        }
    }
    Ok(LocalState {
        event_distribution: effective(event.uuid, event.distribution)?,
        element_distribution,
        received_from: peer.map(str::to_owned),
    })
}

/// Whether any of `tags` is `tlp:red` (trimmed, case-insensitive; travelling or
/// not).
pub fn is_tlp_red(tags: &[Tag]) -> bool {
    tags.iter().any(|t| t.key() == TLP_RED)
}

/// Decides whether `event` (as stored here, with `local` as this node's state
/// about it) goes to `peer`, and if so in what form: see the module docs.
pub fn outbound(event: &Event, local: &LocalState, peer: &Peer) -> Decision {
    match filter(event, local, peer) {
        Ok(e) => Decision::Send(Box::new(e)),
        Err(reason) => Decision::Withhold(reason),
    }
}

/// One step of an element's ancestry: the level the origin signed, the level in
/// effect here, and the sharing group that level 4 refers to.
#[derive(Debug, Clone, Copy)]
struct Level<'a> {
    signed: u8,
    effective: u8,
    sg: Option<&'a SharingGroup>,
}

impl Level<'_> {
    fn under_sharing_group(&self) -> bool {
        self.signed == SHARING_GROUP || self.effective == SHARING_GROUP
    }
}

/// Whether the group admits the peer: active, and the peer's (non-nil) org a member.
fn sg_admits(sg: &SharingGroup, peer: &Peer) -> bool {
    sg.active && !peer.org.is_nil() && sg.has_org(&peer.org)
}

/// Whether one level lets an element go to `peer`. 5 passes: it adds no condition
/// of its own, the parent's levels are checked too ([`admits`]).
fn gate(level: u8, sg: Option<&SharingGroup>, peer: &Peer) -> Result<(), Reason> {
    match level {
        COMMUNITY | CONNECTED | ALL | INHERIT => Ok(()),
        SHARING_GROUP => match sg {
            None => Err(Reason::MissingSharingGroup),
            Some(sg) if sg_admits(sg, peer) => Ok(()),
            Some(_) => Err(Reason::NotInSharingGroup),
        },
        level => Err(Reason::Distribution { level }),
    }
}

/// Whether every level along an ancestry (event first), signed and effective,
/// lets the element go to `peer`.
fn admits(chain: &[Level<'_>], peer: &Peer) -> Result<(), Reason> {
    chain.iter().try_for_each(|l| {
        gate(l.signed, l.sg, peer)?;
        gate(l.effective, l.sg, peer)
    })
}

/// Whether an element with this ancestry may go to `peer`; `red` says whether
/// it or its event is tagged `tlp:red`.
fn element_passes(chain: &[Level<'_>], red: bool, peer: &Peer) -> bool {
    admits(chain, peer).is_ok() && (!red || chain.iter().any(Level::under_sharing_group))
}

/// The level of an element here: signed, effective per `local`, and its group.
fn level<'a>(
    local: &LocalState,
    uuid: &Uuid,
    signed: u8,
    sg: Option<&'a SharingGroup>,
) -> Level<'a> {
    Level {
        signed,
        effective: local.effective(uuid, signed),
        sg,
    }
}

/// Drops from an attribute what the seal does not cover and may not travel.
fn clean_attribute(a: &mut Attribute) {
    a.tags.retain(Tag::travels);
    a.sightings.clear();
}

fn filter(event: &Event, local: &LocalState, peer: &Peer) -> Result<Event, Reason> {
    if local.received_from.as_deref() == Some(peer.name.as_str()) {
        return Err(Reason::Echo);
    }
    if !event.published {
        return Err(Reason::Unpublished);
    }
    let ev = Level {
        signed: event.distribution,
        effective: local.event_distribution,
        sg: event.sharing_group.as_ref(),
    };
    // An event has no parent to inherit from.
    for level in [ev.signed, ev.effective] {
        if level == INHERIT {
            return Err(Reason::Distribution { level });
        }
    }
    admits(&[ev], peer)?;
    let event_red = is_tlp_red(&event.tags);
    if event_red && !ev.under_sharing_group() {
        return Err(Reason::TlpRedWithoutSharingGroup);
    }

    let mut out = event.clone();
    out.tags.retain(Tag::travels);
    out.attributes.retain(|a| {
        let chain = [
            ev,
            level(local, &a.uuid, a.distribution, a.sharing_group.as_ref()),
        ];
        element_passes(&chain, event_red || is_tlp_red(&a.tags), peer)
    });
    // Objects carry no tags: red only through their event.
    out.objects.retain(|o| {
        let chain = [
            ev,
            level(local, &o.uuid, o.distribution, o.sharing_group.as_ref()),
        ];
        element_passes(&chain, event_red, peer)
    });
    for o in &mut out.objects {
        let ol = level(local, &o.uuid, o.distribution, o.sharing_group.as_ref());
        o.attributes.retain(|a| {
            let chain = [
                ev,
                ol,
                level(local, &a.uuid, a.distribution, a.sharing_group.as_ref()),
            ];
            element_passes(&chain, event_red || is_tlp_red(&a.tags), peer)
        });
    }
    out.reports.retain(|r| {
        let chain = [
            ev,
            level(local, &r.uuid, r.distribution, r.sharing_group.as_ref()),
        ];
        element_passes(&chain, event_red, peer)
    });

    let sent: HashSet<Uuid> = out
        .all_attributes()
        .map(|a| a.uuid)
        .chain(out.objects.iter().map(|o| o.uuid))
        .collect();
    for o in &mut out.objects {
        o.references.retain(|r| sent.contains(&r.referenced_uuid));
        o.attributes.iter_mut().for_each(clean_attribute);
    }
    out.attributes.iter_mut().for_each(clean_attribute);
    out.attribute_count = Some(out.all_attributes().filter(|a| !a.deleted).count() as u64);
    // Each element goes at its effective level (a corrupt local state that
    // claims a wider one than signed is not believed: the signed level goes).
    let event_uuid = event.uuid;
    crate::model::seal::send_levels(&mut out, |uuid, signed| {
        let effective = if *uuid == event_uuid {
            local.event_distribution
        } else {
            local.effective(uuid, signed)
        };
        if narrows(signed, effective) {
            effective
        } else {
            signed
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::org::Org;
    use crate::model::sharing_group::SharingGroupOrg;
    use crate::model::{EventReport, Object, ObjectReference, Sighting};
    use crate::seal::signed_form::element_digests;
    use crate::seal::signed_form::header_digest;
    use crate::seal::{seal_event_at, verify_event, NodeKey, TrustList};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const ORIGIN_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00a0);
    const B_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00b0);
    const C_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00c0);
    const OTHER_ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_00d0);
    const EVENT_UUID: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_e000);
    const TS: u64 = 1_700_000_000;
    const NOW: u64 = 1_800_000_000;

    fn peer_b() -> Peer {
        Peer {
            name: "node-b".into(),
            org: B_ORG,
        }
    }

    fn peer_c() -> Peer {
        Peer {
            name: "node-c".into(),
            org: C_ORG,
        }
    }

    fn org(uuid: Uuid) -> Org {
        Org {
            uuid,
            name: format!("org-{}", uuid.as_u128() & 0xff),
            ..Org::default()
        }
    }

    fn sg(n: u128, members: &[Uuid], active: bool) -> SharingGroup {
        SharingGroup {
            id: Some(n as u64),
            uuid: Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0005_0000 | n),
            name: format!("sg-{n}"),
            releasability: String::new(),
            description: String::new(),
            organisation_uuid: ORIGIN_ORG,
            active,
            roaming: false,
            created: String::new(),
            modified: String::new(),
            organisation: None,
            orgs: members
                .iter()
                .map(|&u| SharingGroupOrg {
                    extend: false,
                    org: org(u),
                })
                .collect(),
            servers: Vec::new(),
        }
    }

    /// A group with B as member (not C).
    fn sg_b() -> SharingGroup {
        sg(1, &[ORIGIN_ORG, B_ORG], true)
    }
    /// A group without B or C.
    fn sg_other() -> SharingGroup {
        sg(2, &[ORIGIN_ORG, OTHER_ORG], true)
    }
    /// B and C as members, but inactive.
    fn sg_inactive() -> SharingGroup {
        sg(3, &[B_ORG, C_ORG], false)
    }
    /// B and C as members.
    fn sg_bc() -> SharingGroup {
        sg(4, &[B_ORG, C_ORG], true)
    }

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0001_0000_0000 | n)
    }

    fn event(dist: u8) -> Event {
        let mut e = Event::new("federation test");
        e.uuid = EVENT_UUID;
        e.timestamp = TS;
        e.date = "2023-11-14".into();
        e.published = true;
        e.distribution = dist;
        e.orgc = Some(org(ORIGIN_ORG));
        e
    }

    fn attr(n: u128, dist: u8) -> Attribute {
        let mut a = Attribute::new("domain", format!("a{n}.example"));
        a.uuid = uuid(n);
        a.timestamp = TS;
        a.distribution = dist;
        a
    }

    fn object(n: u128, dist: u8) -> Object {
        Object {
            id: None,
            name: "domain-ip".into(),
            meta_category: "network".into(),
            description: String::new(),
            template_uuid: String::new(),
            template_version: String::new(),
            event_id: None,
            uuid: uuid(n),
            timestamp: TS,
            distribution: dist,
            sharing_group_id: 0,
            comment: String::new(),
            deleted: false,
            first_seen: None,
            last_seen: None,
            sharing_group: None,
            references: Vec::new(),
            attributes: Vec::new(),
        }
    }

    fn reference(n: u128, from: Uuid, to: Uuid) -> ObjectReference {
        ObjectReference {
            id: None,
            uuid: uuid(n),
            timestamp: TS,
            object_uuid: from,
            referenced_uuid: to,
            referenced_type: 0,
            relationship_type: "resolves-to".into(),
            comment: String::new(),
            deleted: false,
        }
    }

    fn report(n: u128, dist: u8) -> EventReport {
        EventReport {
            id: None,
            uuid: uuid(n),
            event_id: None,
            name: format!("report {n}"),
            content: "# findings".into(),
            distribution: dist,
            sharing_group_id: 0,
            timestamp: TS,
            deleted: false,
            sharing_group: None,
        }
    }

    fn with_sg<T>(mut x: T, set: impl FnOnce(&mut T)) -> T {
        set(&mut x);
        x
    }

    fn local_tag(name: &str) -> Tag {
        Tag {
            local: true,
            ..Tag::named(name)
        }
    }

    fn send(e: &Event, peer: &Peer) -> Decision {
        outbound(e, &LocalState::originated(e), peer)
    }

    fn sent(d: Decision) -> Event {
        match d {
            Decision::Send(e) => *e,
            Decision::Withhold(r) => panic!("withheld: {r:?}"),
        }
    }

    fn attr_uuids(e: &Event) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = e.all_attributes().map(|a| a.uuid).collect();
        v.sort();
        v
    }

    // ----- event level -------------------------------------------------------

    #[test]
    fn event_levels() {
        for (dist, expect) in [
            (0, Some(Reason::Distribution { level: 0 })),
            (1, None),
            (2, None),
            (3, None),
            (5, Some(Reason::Distribution { level: 5 })),
            (6, Some(Reason::Distribution { level: 6 })),
            (255, Some(Reason::Distribution { level: 255 })),
        ] {
            let got = send(&event(dist), &peer_b());
            match expect {
                Some(r) => assert_eq!(got, Decision::Withhold(r), "level {dist}"),
                None => assert!(matches!(got, Decision::Send(_)), "level {dist}"),
            }
        }
    }

    #[test]
    fn event_sharing_group_membership() {
        let e = |g: Option<SharingGroup>| {
            let mut e = event(4);
            e.sharing_group = g;
            e
        };
        assert!(matches!(
            send(&e(Some(sg_b())), &peer_b()),
            Decision::Send(_)
        ));
        assert_eq!(
            send(&e(Some(sg_b())), &peer_c()),
            Decision::Withhold(Reason::NotInSharingGroup)
        );
        assert_eq!(
            send(&e(Some(sg_other())), &peer_b()),
            Decision::Withhold(Reason::NotInSharingGroup)
        );
        assert_eq!(
            send(&e(Some(sg_inactive())), &peer_b()),
            Decision::Withhold(Reason::NotInSharingGroup)
        );
        assert_eq!(
            send(&e(None), &peer_b()),
            Decision::Withhold(Reason::MissingSharingGroup)
        );
        // The group's owner org is a member even if not listed.
        let owner = Peer {
            name: "origin".into(),
            org: ORIGIN_ORG,
        };
        assert!(matches!(
            send(&e(Some(sg(9, &[B_ORG], true))), &owner),
            Decision::Send(_)
        ));
        // A nil peer org never matches, not even a nil owner.
        let mut g = sg(9, &[], true);
        g.organisation_uuid = Uuid::nil();
        let nil = Peer {
            name: "nil".into(),
            org: Uuid::nil(),
        };
        assert_eq!(
            send(&e(Some(g)), &nil),
            Decision::Withhold(Reason::NotInSharingGroup)
        );
    }

    #[test]
    fn unpublished_is_withheld() {
        let mut e = event(3);
        e.published = false;
        assert_eq!(send(&e, &peer_b()), Decision::Withhold(Reason::Unpublished));
    }

    #[test]
    fn never_back_to_the_sender() {
        let mut e = event(3);
        e.published = false;
        let local = local_state_on_receipt(&e, &HashMap::new(), Some("node-b")).unwrap();
        assert_eq!(
            outbound(&e, &local, &peer_b()),
            Decision::Withhold(Reason::Echo)
        );
        e.published = true;
        assert_eq!(
            outbound(&e, &local, &peer_b()),
            Decision::Withhold(Reason::Echo)
        );
        assert!(matches!(outbound(&e, &local, &peer_c()), Decision::Send(_)));
    }

    #[test]
    fn effective_level_decides_and_never_widens() {
        // Received: 1 is 0 here, and goes no further.
        let e = event(1);
        let local = local_state_on_receipt(&e, &HashMap::new(), Some("node-a")).unwrap();
        assert_eq!(local.event_distribution, 0);
        assert_eq!(
            outbound(&e, &local, &peer_c()),
            Decision::Withhold(Reason::Distribution { level: 0 })
        );
        // Received: 2 is 1 here, and goes on as 1.
        let e2 = event(2);
        let local = local_state_on_receipt(&e2, &HashMap::new(), Some("node-a")).unwrap();
        assert_eq!(local.event_distribution, 1);
        assert_eq!(sent(outbound(&e2, &local, &peer_c())).distribution, 1);
        // An operator's local narrowing of a 3.
        let e3 = event(3);
        let local = LocalState {
            event_distribution: 0,
            ..LocalState::originated(&e3)
        };
        assert_eq!(
            outbound(&e3, &local, &peer_b()),
            Decision::Withhold(Reason::Distribution { level: 0 })
        );
        // A local state claiming wider than signed does not widen.
        let e0 = event(0);
        let local = LocalState {
            event_distribution: 3,
            ..LocalState::originated(&e0)
        };
        assert_eq!(
            outbound(&e0, &local, &peer_b()),
            Decision::Withhold(Reason::Distribution { level: 0 })
        );
        let mut e = event(3);
        e.attributes = vec![attr(1, 0), attr(2, 3)];
        let mut local = LocalState::originated(&e);
        local.element_distribution.insert(uuid(1), 3);
        local.element_distribution.insert(uuid(2), 0);
        assert!(attr_uuids(&sent(outbound(&e, &local, &peer_b()))).is_empty());
        // A claimed 3 over a signed 2 is sent as signed.
        let mut e = event(3);
        e.attributes = vec![attr(1, 2)];
        let mut local = LocalState::originated(&e);
        local.element_distribution.insert(uuid(1), 3);
        assert_eq!(
            sent(outbound(&e, &local, &peer_b())).attributes[0].distribution,
            2
        );
    }

    #[test]
    fn a_sent_level_wider_than_signed_is_refused() {
        let mut e = event(3);
        e.attributes = vec![
            attr(1, 2),
            with_sg(attr(2, 4), |a| a.sharing_group = Some(sg_b())),
        ];
        for (uuid, level) in [(uuid(1), 3), (uuid(2), 3), (EVENT_UUID, 4)] {
            let sent = HashMap::from([(uuid, level)]);
            let err = local_state_on_receipt(&e, &sent, Some("node-a")).unwrap_err();
            assert_eq!(err.uuid, uuid);
        }
        // Narrowed: fine, and then downgraded.
        let sent = HashMap::from([(uuid(1), 1), (EVENT_UUID, 2)]);
        let local = local_state_on_receipt(&e, &sent, Some("node-a")).unwrap();
        assert_eq!(local.event_distribution, 1);
        assert_eq!(local.effective(&uuid(1), 2), 0);
        // Without a hop (an import), as sent.
        let local = local_state_on_receipt(&e, &sent, None).unwrap();
        assert_eq!(local.event_distribution, 2);
        assert_eq!(local.effective(&uuid(1), 2), 1);
        assert_eq!(local.received_from, None);
    }

    // ----- children ----------------------------------------------------------

    #[test]
    fn attribute_levels() {
        let mut e = event(3);
        e.attributes = vec![
            attr(0, 0),
            attr(1, 1),
            attr(2, 2),
            attr(3, 3),
            with_sg(attr(4, 4), |a| a.sharing_group = Some(sg_b())),
            attr(5, 5),
            attr(6, 6),
            attr(7, 4), // no group object: fail closed
            with_sg(attr(8, 4), |a| a.sharing_group = Some(sg_inactive())),
        ];
        assert_eq!(
            attr_uuids(&sent(send(&e, &peer_b()))),
            vec![uuid(1), uuid(2), uuid(3), uuid(4), uuid(5)]
        );
        assert_eq!(
            attr_uuids(&sent(send(&e, &peer_c()))),
            vec![uuid(1), uuid(2), uuid(3), uuid(5)]
        );
    }

    #[test]
    fn inherit_follows_object_then_event() {
        let mut e = event(4);
        e.sharing_group = Some(sg_bc());
        let mut o_sg = with_sg(object(10, 4), |o| o.sharing_group = Some(sg_b()));
        o_sg.attributes = vec![attr(11, 5), attr(12, 3)];
        let mut o_inh = object(20, 5);
        o_inh.attributes = vec![attr(21, 5)];
        e.objects = vec![o_sg, o_inh];
        e.attributes = vec![attr(1, 5)];
        e.reports = vec![report(30, 5)];
        // B is in both groups: everything.
        let to_b = sent(send(&e, &peer_b()));
        assert_eq!(
            attr_uuids(&to_b),
            vec![uuid(1), uuid(11), uuid(12), uuid(21)]
        );
        assert_eq!(to_b.reports.len(), 1);
        // C is in the event's group, not in object 10's: the object and both of
        // its attributes (5 inherits, 3 is bounded by the object) are withheld.
        let to_c = sent(send(&e, &peer_c()));
        assert_eq!(attr_uuids(&to_c), vec![uuid(1), uuid(21)]);
        assert_eq!(
            to_c.objects.iter().map(|o| o.uuid).collect::<Vec<_>>(),
            vec![uuid(20)]
        );
        assert_eq!(to_c.reports.len(), 1);
    }

    #[test]
    fn withheld_object_takes_its_attributes_and_references() {
        let mut e = event(3);
        let mut kept = object(10, 3);
        kept.attributes = vec![attr(11, 3), attr(12, 0)];
        kept.references = vec![
            reference(13, uuid(10), uuid(11)), // to a kept attribute
            reference(14, uuid(10), uuid(12)), // to a withheld attribute
            reference(15, uuid(10), uuid(20)), // to the withheld object
            reference(16, uuid(10), uuid(21)), // into the withheld object
            reference(17, uuid(10), uuid(1)),  // to a kept top-level attribute
            reference(18, uuid(10), uuid(99)), // to something not in the event
        ];
        let mut gone = object(20, 0);
        gone.attributes = vec![attr(21, 3)];
        gone.references = vec![reference(22, uuid(20), uuid(11))];
        e.objects = vec![kept, gone];
        e.attributes = vec![attr(1, 3)];
        let out = sent(send(&e, &peer_b()));
        assert_eq!(out.objects.len(), 1);
        assert_eq!(attr_uuids(&out), vec![uuid(1), uuid(11)]);
        assert_eq!(
            out.objects[0]
                .references
                .iter()
                .map(|r| r.uuid)
                .collect::<Vec<_>>(),
            vec![uuid(13), uuid(17)]
        );
    }

    #[test]
    fn reports_are_filtered() {
        let mut e = event(3);
        e.reports = vec![
            report(1, 0),
            report(2, 3),
            with_sg(report(3, 4), |r| r.sharing_group = Some(sg_other())),
            report(4, 5),
        ];
        let out = sent(send(&e, &peer_b()));
        assert_eq!(
            out.reports.iter().map(|r| r.uuid).collect::<Vec<_>>(),
            vec![uuid(2), uuid(4)]
        );
    }

    #[test]
    fn header_only_event_is_sent() {
        let mut e = event(3);
        e.attributes = vec![attr(1, 0), attr(2, 0)];
        e.objects = vec![object(3, 0)];
        e.reports = vec![report(4, 0)];
        let out = sent(send(&e, &peer_b()));
        assert!(out.attributes.is_empty() && out.objects.is_empty() && out.reports.is_empty());
        assert_eq!(out.attribute_count, Some(0));
        assert_eq!(out.info, e.info);
    }

    // ----- TLP:RED -----------------------------------------------------------

    #[test]
    fn red_event_needs_a_sharing_group() {
        for name in ["tlp:red", "TLP:RED", " Tlp:Red "] {
            let mut e = event(3);
            e.tags = vec![Tag::named(name)];
            assert_eq!(
                send(&e, &peer_b()),
                Decision::Withhold(Reason::TlpRedWithoutSharingGroup),
                "{name}"
            );
        }
        let mut e = event(3);
        e.tags = vec![Tag::named("tlp:amber"), Tag::named("tlp:redacted")];
        assert!(matches!(send(&e, &peer_b()), Decision::Send(_)));
    }

    #[test]
    fn red_event_under_sharing_group_passes_children_their_levels_allow() {
        let mut e = event(4);
        e.sharing_group = Some(sg_b());
        e.tags = vec![Tag::named("tlp:red")];
        e.attributes = vec![
            attr(1, 5),
            attr(2, 3),
            attr(3, 0),
            with_sg(attr(4, 4), |a| a.sharing_group = Some(sg_other())),
            with_sg(attr(5, 4), |a| a.sharing_group = Some(sg_b())),
        ];
        e.reports = vec![report(6, 5), report(7, 0)];
        let out = sent(send(&e, &peer_b()));
        assert_eq!(attr_uuids(&out), vec![uuid(1), uuid(2), uuid(5)]);
        assert_eq!(out.reports.len(), 1);
        assert_eq!(
            send(&e, &peer_c()),
            Decision::Withhold(Reason::NotInSharingGroup)
        );
    }

    #[test]
    fn red_attribute_needs_a_sharing_group_on_its_ancestry() {
        let red = |a: Attribute| with_sg(a, |a| a.tags = vec![Tag::named("TLP:Red")]);
        let mut e = event(3);
        let mut o = with_sg(object(10, 4), |o| o.sharing_group = Some(sg_b()));
        o.attributes = vec![red(attr(11, 5)), red(attr(12, 3))];
        e.objects = vec![o];
        e.attributes = vec![
            red(attr(1, 3)),
            red(attr(2, 5)),
            red(with_sg(attr(3, 4), |a| a.sharing_group = Some(sg_b()))),
            red(with_sg(attr(4, 4), |a| a.sharing_group = Some(sg_other()))),
            attr(5, 3),
        ];
        let out = sent(send(&e, &peer_b()));
        assert_eq!(attr_uuids(&out), vec![uuid(3), uuid(5), uuid(11), uuid(12)]);
    }

    #[test]
    fn local_red_tag_restricts_and_is_stripped() {
        let mut e = event(3);
        let mut a = attr(1, 3);
        a.tags = vec![local_tag("tlp:red")];
        e.attributes = vec![a, attr(2, 3)];
        let out = sent(send(&e, &peer_b()));
        assert_eq!(attr_uuids(&out), vec![uuid(2)]);
        e.tags = vec![local_tag("tlp:red")];
        assert_eq!(
            send(&e, &peer_b()),
            Decision::Withhold(Reason::TlpRedWithoutSharingGroup)
        );
        e.distribution = 4;
        e.sharing_group = Some(sg_b());
        e.attributes[0].distribution = 5;
        let out = sent(send(&e, &peer_b()));
        assert!(out.tags.is_empty());
        assert_eq!(attr_uuids(&out), vec![uuid(1), uuid(2)]);
        assert!(out.all_attributes().all(|a| a.tags.is_empty()));
    }

    // ----- tags, sightings, seal ---------------------------------------------

    #[test]
    fn non_travelling_tags_and_sightings_are_stripped() {
        let no_export = Tag {
            exportable: false,
            ..Tag::named("internal:x")
        };
        let local_only = Tag {
            local_only: true,
            ..Tag::named("internal:y")
        };
        let tags = vec![
            Tag::named("tlp:green"),
            local_tag("workflow:todo"),
            no_export,
            local_only,
        ];
        let mut e = event(3);
        e.tags = tags.clone();
        let mut a = attr(1, 3);
        a.tags = tags.clone();
        a.sightings = vec![serde_json::from_value::<Sighting>(serde_json::json!({
            "uuid": uuid(50).to_string(), "date_sighting": "1700000000"
        }))
        .unwrap()];
        let mut o = object(10, 3);
        o.attributes = vec![with_sg(attr(11, 5), |a| a.tags = tags.clone())];
        e.attributes = vec![a];
        e.objects = vec![o];
        let out = sent(send(&e, &peer_b()));
        let names = |t: &[Tag]| t.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&out.tags), vec!["tlp:green"]);
        for a in out.all_attributes() {
            assert_eq!(names(&a.tags), vec!["tlp:green"]);
            assert!(a.sightings.is_empty());
        }
        assert_eq!(out.attribute_count, Some(2));
    }

    #[test]
    fn filtered_event_still_verifies() {
        let key = NodeKey::generate().unwrap();
        let mut trust = TrustList::new();
        trust
            .add(ORIGIN_ORG, &key.public_key_b64(), None, None)
            .unwrap();
        let mut e = event(3);
        e.tags = vec![Tag::named("tlp:green"), local_tag("x:y")];
        let mut o = object(10, 3);
        o.attributes = vec![attr(11, 5), attr(12, 0)];
        o.references = vec![reference(13, uuid(10), uuid(12))];
        e.objects = vec![o];
        e.attributes = vec![
            attr(1, 1),
            with_sg(attr(2, 3), |a| a.tags = e.tags.clone()),
            attr(3, 2),
        ];
        e.reports = vec![report(20, 0)];
        seal_event_at(&mut e, &key, ORIGIN_ORG, TS + 10).unwrap();
        let out = sent(send(&e, &peer_b()));
        let v = verify_event(&out, &trust, NOW).unwrap();
        assert_eq!((v.present, v.signed), (5, 8));
        // Sent on at downgraded levels: verifies once the signed ones are back.
        let (at_b, local_b) = receive(&out, "node-a");
        let on = sent(outbound(&at_b, &local_b, &peer_c()));
        assert_eq!(
            attr_uuids(&on),
            vec![uuid(2), uuid(3), uuid(11)],
            "the 1 stopped at B"
        );
        assert_eq!(on.attributes[1].distribution, 1, "the 2 goes on as 1");
        assert!(verify_event(&on, &trust, NOW).is_err());
        let (back, _) = receive(&on, "node-b");
        let v = verify_event(&back, &trust, NOW).unwrap();
        assert_eq!((v.present, v.signed), (4, 8));
    }

    // ----- receipt -----------------------------------------------------------

    /// What a node makes of `out` received from `from`: the event with the
    /// levels its origin signed, and its local state.
    fn receive(out: &Event, from: &str) -> (Event, LocalState) {
        let mut e = out.clone();
        let sent = crate::model::seal::restore_signed_levels(&mut e);
        let local = local_state_on_receipt(&e, &sent, Some(from)).unwrap();
        (e, local)
    }

    #[test]
    fn receipt_downgrades_one_step() {
        for (signed, eff) in [(0, 0), (1, 0), (2, 1), (3, 3), (4, 4), (5, 5), (9, 9)] {
            assert_eq!(effective_on_receipt(signed), eff);
        }
        let mut e = event(2);
        let mut o = object(10, 2);
        o.attributes = vec![attr(11, 1), attr(12, 5)];
        e.objects = vec![o];
        e.attributes = vec![attr(1, 2), attr(2, 3)];
        e.reports = vec![report(20, 2), report(21, 4)];
        let local = local_state_on_receipt(&e, &HashMap::new(), Some("node-a")).unwrap();
        assert_eq!(local.event_distribution, 1);
        assert_eq!(local.received_from.as_deref(), Some("node-a"));
        let expect: HashMap<Uuid, u8> = [(uuid(10), 1), (uuid(11), 0), (uuid(1), 1), (uuid(20), 1)]
            .into_iter()
            .collect();
        assert_eq!(local.element_distribution, expect);
    }

    #[test]
    fn hops_by_level() {
        let a_to_b = |e: &Event| {
            let mut e = e.clone();
            seal_event_at(&mut e, &keys().0, ORIGIN_ORG, TS + 10).unwrap();
            send(&e, &peer_b())
        };
        // 1: reaches B as 0, stops there.
        let at_b = sent(a_to_b(&event(1)));
        assert_eq!(at_b.distribution, 1);
        let (b, local_b) = receive(&at_b, "node-a");
        assert_eq!(local_b.event_distribution, 0);
        assert_eq!(
            outbound(&b, &local_b, &peer_c()),
            Decision::Withhold(Reason::Distribution { level: 0 })
        );
        // 2: reaches B as 1, C as 0, and stops there.
        let at_b = sent(a_to_b(&event(2)));
        let (b, local_b) = receive(&at_b, "node-a");
        assert_eq!(local_b.event_distribution, 1);
        let at_c = sent(outbound(&b, &local_b, &peer_c()));
        assert_eq!(at_c.distribution, 1, "sent at its level on B");
        let (c, local_c) = receive(&at_c, "node-b");
        assert_eq!(c.distribution, 2, "the origin's level is back for the seal");
        assert_eq!(local_c.event_distribution, 0);
        let peer_d = Peer {
            name: "node-d".into(),
            org: OTHER_ORG,
        };
        assert_eq!(
            outbound(&c, &local_c, &peer_d),
            Decision::Withhold(Reason::Distribution { level: 0 })
        );
        // 3: every hop, unchanged.
        let at_b = sent(a_to_b(&event(3)));
        let (b, local_b) = receive(&at_b, "node-a");
        let at_c = sent(outbound(&b, &local_b, &peer_c()));
        assert_eq!(at_c.distribution, 3);
        // 3 with a 1 and a 2 child: the 1 reaches B, the 2 reaches C, as 0.
        let mut e = event(3);
        e.attributes = vec![attr(1, 1), attr(2, 2), attr(3, 3)];
        let at_b = sent(a_to_b(&e));
        assert_eq!(attr_uuids(&at_b), vec![uuid(1), uuid(2), uuid(3)]);
        let (b, local_b) = receive(&at_b, "node-a");
        let at_c = sent(outbound(&b, &local_b, &peer_c()));
        assert_eq!(attr_uuids(&at_c), vec![uuid(2), uuid(3)]);
        let (c, local_c) = receive(&at_c, "node-b");
        assert_eq!(local_c.effective(&uuid(2), 2), 0);
        assert_eq!(
            attr_uuids(&sent(outbound(&c, &local_c, &peer_d))),
            vec![uuid(3)]
        );
    }

    // ----- properties --------------------------------------------------------

    /// Tag pool for generated elements: red in several spellings, a local red,
    /// harmless travelling tags, and each kind of non-travelling tag.
    fn tag_pool(i: usize) -> Tag {
        match i {
            0 => Tag::named("tlp:red"),
            1 => Tag::named("TLP:RED"),
            2 => local_tag("tlp:red"),
            3 => Tag::named("tlp:green"),
            4 => local_tag("workflow:todo"),
            5 => Tag {
                exportable: false,
                ..Tag::named("internal:no-export")
            },
            6 => Tag {
                local_only: true,
                ..Tag::named("internal:local-only")
            },
            _ => Tag::named("tlp:amber"),
        }
    }
    const TAG_POOL: usize = 8;

    fn sg_pool(i: u8) -> Option<SharingGroup> {
        match i {
            0 => None,
            1 => Some(sg_b()),
            2 => Some(sg_other()),
            3 => Some(sg_inactive()),
            _ => Some(sg_bc()),
        }
    }

    /// One generated element: signed level (0–5, sometimes invalid), sharing
    /// group choice, tags, an optional local override of its level, deleted flag.
    #[derive(Debug, Clone)]
    struct Spec {
        dist: u8,
        sg: u8,
        tags: Vec<usize>,
        local: Option<u8>,
        deleted: bool,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            prop_oneof![9 => 0u8..=5, 1 => 6u8..=7],
            0u8..5,
            prop::collection::vec(0..TAG_POOL, 0..3),
            prop::option::weighted(0.2, 0u8..=5),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(dist, sg, tags, local, deleted)| Spec {
                dist,
                sg,
                tags,
                local,
                deleted,
            })
    }

    #[derive(Debug, Clone)]
    struct EventSpec {
        header: Spec,
        published: bool,
        attributes: Vec<Spec>,
        objects: Vec<(Spec, Vec<Spec>, Vec<prop::sample::Index>)>,
        reports: Vec<Spec>,
        /// 0: created here, 1: received from B, 2: received from another peer.
        received: u8,
    }

    fn event_spec() -> impl Strategy<Value = EventSpec> {
        (
            spec(),
            prop::bool::weighted(0.85),
            prop::collection::vec(spec(), 0..6),
            prop::collection::vec(
                (
                    spec(),
                    prop::collection::vec(spec(), 0..4),
                    prop::collection::vec(any::<prop::sample::Index>(), 0..3),
                ),
                0..3,
            ),
            prop::collection::vec(spec(), 0..3),
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        )
            .prop_map(
                |(header, published, attributes, objects, reports, received)| EventSpec {
                    header,
                    published,
                    attributes,
                    objects,
                    reports,
                    received,
                },
            )
    }

    /// Builds the event and its local state from a spec: unique uuids, every
    /// reference pointing at some element of the event.
    fn build(s: &EventSpec) -> (Event, LocalState) {
        let mut e = event(s.header.dist);
        e.published = s.published;
        e.sharing_group = sg_pool(s.header.sg);
        e.tags = s.header.tags.iter().map(|&i| tag_pool(i)).collect();
        let mut local = LocalState {
            event_distribution: s.header.local.unwrap_or(s.header.dist),
            element_distribution: HashMap::new(),
            received_from: match s.received {
                0 => None,
                1 => Some(peer_b().name),
                _ => Some("node-z".into()),
            },
        };
        let mut n = 0u128;
        let mut next = || {
            n += 1;
            uuid(n)
        };
        let mk_attr = |sp: &Spec, u: Uuid, local: &mut LocalState| {
            let mut a = attr(u.as_u128() & 0xffff_ffff, sp.dist);
            a.sharing_group = sg_pool(sp.sg);
            a.tags = sp.tags.iter().map(|&i| tag_pool(i)).collect();
            a.deleted = sp.deleted;
            if sp.tags.len() == 1 {
                a.sightings = vec![serde_json::from_value(serde_json::json!({
                    "uuid": Uuid::from_u128(u.as_u128() ^ 0xffff).to_string(),
                    "date_sighting": "1700000000"
                }))
                .unwrap()];
            }
            if let Some(l) = sp.local {
                local.element_distribution.insert(u, l);
            }
            a
        };
        for sp in &s.attributes {
            let u = next();
            e.attributes.push(mk_attr(sp, u, &mut local));
        }
        for (osp, attrs, _) in &s.objects {
            let ou = next();
            let mut o = object(ou.as_u128() & 0xffff_ffff, osp.dist);
            o.sharing_group = sg_pool(osp.sg);
            o.deleted = osp.deleted;
            if let Some(l) = osp.local {
                local.element_distribution.insert(ou, l);
            }
            for sp in attrs {
                let u = next();
                o.attributes.push(mk_attr(sp, u, &mut local));
            }
            e.objects.push(o);
        }
        let targets: Vec<Uuid> = e
            .all_attributes()
            .map(|a| a.uuid)
            .chain(e.objects.iter().map(|o| o.uuid))
            .collect();
        for (i, (_, _, refs)) in s.objects.iter().enumerate() {
            if targets.is_empty() {
                break;
            }
            for ix in refs {
                let from = e.objects[i].uuid;
                let r = reference(
                    next().as_u128() & 0xffff_ffff,
                    from,
                    targets[ix.index(targets.len())],
                );
                e.objects[i].references.push(r);
            }
        }
        for sp in &s.reports {
            let u = next();
            let mut r = report(u.as_u128() & 0xffff_ffff, sp.dist);
            r.sharing_group = sg_pool(sp.sg);
            r.deleted = sp.deleted;
            if let Some(l) = sp.local {
                local.element_distribution.insert(u, l);
            }
            e.reports.push(r);
        }
        (e, local)
    }

    fn keys() -> &'static (NodeKey, TrustList) {
        static K: OnceLock<(NodeKey, TrustList)> = OnceLock::new();
        K.get_or_init(|| {
            let key = NodeKey::generate().unwrap();
            let mut trust = TrustList::new();
            trust
                .add(ORIGIN_ORG, &key.public_key_b64(), None, None)
                .unwrap();
            (key, trust)
        })
    }

    /// The oracle for property 1, written independently of the filter: the
    /// resolved level of an element along its ancestry (5 resolved to the
    /// parent's), checked as "may this go to `peer`".
    fn resolve(levels: &[(u8, Option<&SharingGroup>)]) -> (u8, Option<SharingGroup>) {
        let mut cur = (INHERIT, None);
        for &(d, g) in levels {
            if d != INHERIT {
                cur = (d, g.cloned());
            }
        }
        cur
    }

    fn check_sendable(
        what: &str,
        resolved: &(u8, Option<SharingGroup>),
        all: &[u8],
        peer: &Peer,
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            matches!(resolved.0, 1..=4),
            "{what}: resolved level {} sent",
            resolved.0
        );
        // Every explicit level along the ancestry leaves the node.
        prop_assert!(all.iter().all(|l| matches!(l, 1..=5)), "{what}: {all:?}");
        if resolved.0 == 4 {
            let g = resolved.1.as_ref();
            prop_assert!(
                g.is_some_and(|g| g.active && g.has_org(&peer.org)),
                "{what}: level 4 without the peer in the group"
            );
        }
        Ok(())
    }

    /// Property 1 for one sent event, against the original and its local state.
    fn check_nothing_forbidden(
        orig: &Event,
        local: &LocalState,
        out: &Event,
        peer: &Peer,
    ) -> Result<(), TestCaseError> {
        let event_red = is_tlp_red(&orig.tags);
        let eff = |u: &Uuid, d: u8| local.effective(u, d);
        let eg = orig.sharing_group.as_ref();
        let ev_levels = [(orig.distribution, eg)];
        let ev_eff = [(local.event_distribution, eg)];
        check_sendable(
            "event",
            &resolve(&ev_eff),
            &[orig.distribution, local.event_distribution],
            peer,
        )?;
        check_sendable("event (signed)", &resolve(&ev_levels), &[], peer)?;
        prop_assert!(!event_red || orig.distribution == 4 || local.event_distribution == 4);
        for t in out
            .tags
            .iter()
            .chain(out.all_attributes().flat_map(|a| a.tags.iter()))
        {
            prop_assert!(t.travels(), "tag {} does not travel", t.name);
        }
        // A reference travels only with its target.
        let sent: HashSet<Uuid> = out
            .all_attributes()
            .map(|a| a.uuid)
            .chain(out.objects.iter().map(|o| o.uuid))
            .collect();
        for r in out.objects.iter().flat_map(|o| o.references.iter()) {
            prop_assert!(sent.contains(&r.referenced_uuid), "dangling reference");
        }
        let orig_obj = |u: &Uuid| orig.objects.iter().find(|o| o.uuid == *u);
        let check = |what: &str,
                     signed: Vec<(u8, Option<&SharingGroup>)>,
                     uuids: Vec<Uuid>,
                     red: bool|
         -> Result<(), TestCaseError> {
            let effective: Vec<(u8, Option<&SharingGroup>)> = signed
                .iter()
                .zip(std::iter::once(None).chain(uuids.iter().map(Some)))
                .map(|(&(d, g), u)| (u.map_or(local.event_distribution, |u| eff(u, d)), g))
                .collect();
            let all: Vec<u8> = signed.iter().chain(effective.iter()).map(|l| l.0).collect();
            check_sendable(what, &resolve(&effective), &all, peer)?;
            check_sendable(what, &resolve(&signed), &all, peer)?;
            if red {
                prop_assert!(
                    all.contains(&SHARING_GROUP),
                    "{what}: TLP:RED outside a sharing group"
                );
            }
            Ok(())
        };
        for a in &out.attributes {
            let oa = orig.attributes.iter().find(|x| x.uuid == a.uuid).unwrap();
            check(
                "attribute",
                vec![ev_levels[0], (oa.distribution, oa.sharing_group.as_ref())],
                vec![oa.uuid],
                event_red || is_tlp_red(&oa.tags),
            )?;
        }
        for o in &out.objects {
            let oo = orig_obj(&o.uuid).unwrap();
            let ol = (oo.distribution, oo.sharing_group.as_ref());
            check("object", vec![ev_levels[0], ol], vec![oo.uuid], event_red)?;
            for a in &o.attributes {
                let oa = oo.attributes.iter().find(|x| x.uuid == a.uuid).unwrap();
                check(
                    "object attribute",
                    vec![
                        ev_levels[0],
                        ol,
                        (oa.distribution, oa.sharing_group.as_ref()),
                    ],
                    vec![oo.uuid, oa.uuid],
                    event_red || is_tlp_red(&oa.tags),
                )?;
            }
        }
        for r in &out.reports {
            let or = orig.reports.iter().find(|x| x.uuid == r.uuid).unwrap();
            check(
                "report",
                vec![ev_levels[0], (or.distribution, or.sharing_group.as_ref())],
                vec![or.uuid],
                event_red,
            )?;
        }
        Ok(())
    }

    /// Property 2: every remaining element is the input's, minus non-travelling
    /// tags and nested sightings; same digests; the seal still verifies.
    fn check_unchanged(orig: &Event, out: &Event) -> Result<(), TestCaseError> {
        let mut out = out.clone();
        crate::model::seal::restore_signed_levels(&mut out);
        let out = &out;
        // Written out rather than calling `clean_attribute`, so the oracle does
        // not share the code it checks.
        let strip = |a: &Attribute| {
            let mut a = a.clone();
            a.tags.retain(|t| !t.local && !t.local_only && t.exportable);
            a.sightings.clear();
            a
        };
        let mut expect_header = orig.clone();
        expect_header.tags.retain(Tag::travels);
        let header = |e: &Event| Event {
            attributes: Vec::new(),
            objects: Vec::new(),
            reports: Vec::new(),
            attribute_count: None,
            ..e.clone()
        };
        prop_assert_eq!(header(out), header(&expect_header));
        prop_assert_eq!(header_digest(out).unwrap(), header_digest(orig).unwrap());
        for a in &out.attributes {
            let oa = orig.attributes.iter().find(|x| x.uuid == a.uuid).unwrap();
            prop_assert_eq!(a, &strip(oa));
        }
        for o in &out.objects {
            let oo = orig.objects.iter().find(|x| x.uuid == o.uuid).unwrap();
            let bare = |x: &Object| Object {
                attributes: Vec::new(),
                references: Vec::new(),
                ..x.clone()
            };
            prop_assert_eq!(bare(o), bare(oo));
            for a in &o.attributes {
                let oa = oo.attributes.iter().find(|x| x.uuid == a.uuid).unwrap();
                prop_assert_eq!(a, &strip(oa));
            }
            for r in &o.references {
                prop_assert!(oo.references.contains(r));
            }
        }
        for r in &out.reports {
            prop_assert!(orig.reports.contains(r));
        }
        let signed: HashSet<_> = element_digests(orig)
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        for (r, d) in element_digests(out).unwrap() {
            prop_assert!(signed.contains(&d), "{r} changed");
        }
        let v = verify_event(out, &keys().1, NOW);
        prop_assert!(v.is_ok(), "{v:?}");
        Ok(())
    }

    /// Property 6: every element goes at its effective level, unless that
    /// would widen the signed one.
    fn check_sent_levels(
        orig: &Event,
        local: &LocalState,
        out: &Event,
    ) -> Result<(), TestCaseError> {
        let expect = |signed: u8, effective: u8| {
            if effective == signed || (signed <= 3 && effective < signed) {
                effective
            } else {
                signed
            }
        };
        prop_assert_eq!(
            out.distribution,
            expect(orig.distribution, local.event_distribution)
        );
        let signed: HashMap<Uuid, u8> = orig.element_levels().collect();
        for (u, level) in out.element_levels() {
            let s = signed[&u];
            prop_assert_eq!(level, expect(s, local.effective(&u, s)), "{}", u);
        }
        Ok(())
    }

    fn sealed(s: &EventSpec) -> (Event, LocalState) {
        let (mut e, local) = build(s);
        seal_event_at(&mut e, &keys().0, ORIGIN_ORG, TS + 10).unwrap();
        (e, local)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Properties 1 to 4 over random events, states and both peers.
        #[test]
        fn outbound_properties(s in event_spec(), to_c in any::<bool>()) {
            let (e, local) = sealed(&s);
            let peer = if to_c { peer_c() } else { peer_b() };
            let d = outbound(&e, &local, &peer);
            if local.received_from.as_deref() == Some(peer.name.as_str()) {
                prop_assert_eq!(d, Decision::Withhold(Reason::Echo));
            } else if !e.published {
                prop_assert_eq!(d, Decision::Withhold(Reason::Unpublished));
            } else if let Decision::Send(out) = d {
                check_nothing_forbidden(&e, &local, &out, &peer)?;
                check_unchanged(&e, &out)?;
                check_sent_levels(&e, &local, &out)?;
                // Sending is deterministic and idempotent on what it sent.
                let again = outbound(&out, &local, &peer);
                prop_assert_eq!(again, Decision::Send(out));
            }
        }

        /// Property 5: a chain A → B → C → D with honest nodes.
        #[test]
        fn chain_a_b_c(mut s in event_spec(), level in 1u8..=4, g in 1u8..5) {
            s.header = Spec { dist: level, sg: g, tags: vec![3], local: None, deleted: false };
            s.published = true;
            s.received = 0;
            let (e, mut local_a) = sealed(&s);
            // An honest origin has no overrides beyond what it signed.
            local_a.element_distribution.clear();
            let group = e.sharing_group.clone();
            let member = |p: &Peer| group.as_ref().is_some_and(|g| g.active && g.has_org(&p.org));
            let at_b = match outbound(&e, &local_a, &peer_b()) {
                Decision::Send(x) => *x,
                Decision::Withhold(r) => {
                    prop_assert!(level == 4 && !member(&peer_b()), "{r:?}");
                    return Ok(());
                }
            };
            prop_assert!(level != 4 || member(&peer_b()));
            let (b, local_b) = receive(&at_b, "node-a");
            prop_assert_eq!(&b.seal, &e.seal, "the origin's seal, whole");
            prop_assert_eq!(local_b.event_distribution, effective_on_receipt(level));
            // Nothing goes back to A.
            let peer_a = Peer { name: "node-a".into(), org: ORIGIN_ORG };
            prop_assert_eq!(outbound(&b, &local_b, &peer_a), Decision::Withhold(Reason::Echo));
            let d = outbound(&b, &local_b, &peer_c());
            match level {
                1 => prop_assert_eq!(&d, &Decision::Withhold(Reason::Distribution { level: 0 })),
                2 | 3 => prop_assert!(matches!(d, Decision::Send(_))),
                _ => prop_assert_eq!(matches!(d, Decision::Send(_)), member(&peer_c())),
            }
            if let Decision::Send(at_c) = d {
                check_nothing_forbidden(&b, &local_b, &at_c, &peer_c())?;
                check_unchanged(&e, &at_c)?;
                check_sent_levels(&b, &local_b, &at_c)?;
                let (c, local_c) = receive(&at_c, "node-b");
                // No element signed 1 (itself or along its ancestry) reaches
                // C, and one signed 2 is 0 there.
                let signed_one = |u: &Uuid| {
                    e.attributes.iter().any(|a| a.uuid == *u && a.distribution == 1)
                        || e.reports.iter().any(|r| r.uuid == *u && r.distribution == 1)
                        || e.objects.iter().any(|o| {
                            let holds = o.uuid == *u || o.attributes.iter().any(|a| a.uuid == *u);
                            (o.distribution == 1 && holds)
                                || o.attributes.iter().any(|a| a.uuid == *u && a.distribution == 1)
                        })
                };
                for u in c.all_attributes().map(|a| a.uuid)
                    .chain(c.objects.iter().map(|o| o.uuid))
                    .chain(c.reports.iter().map(|r| r.uuid))
                {
                    prop_assert!(!signed_one(&u), "{} signed 1 reached C", u);
                }
                for a in c.all_attributes().filter(|a| a.distribution == 2) {
                    prop_assert_eq!(local_c.effective(&a.uuid, 2), 0);
                }
                // C sees a subset of what B got, and a 2 stops at C.
                let b_attrs: HashSet<Uuid> = at_b.all_attributes().map(|a| a.uuid).collect();
                prop_assert!(at_c.all_attributes().all(|a| b_attrs.contains(&a.uuid)));
                let peer_d = Peer { name: "node-d".into(), org: OTHER_ORG };
                if let Decision::Send(at_d) = outbound(&c, &local_c, &peer_d) {
                    prop_assert!(level != 2);
                    check_unchanged(&e, &at_d)?;
                    let signed_level = |a: &Attribute| {
                        c.all_attributes().find(|x| x.uuid == a.uuid).map(|x| x.distribution)
                    };
                    let low = at_d.all_attributes().filter(|a| matches!(signed_level(a), Some(1 | 2)));
                    prop_assert_eq!(low.count(), 0, "a 1 or 2 went three hops");
                }
            }
        }
    }
}
