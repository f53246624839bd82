//! Who may see what: MISP's access rules for local users, as pure functions.
//!
//! An event is visible to a user if the user's organisation owns it, or its
//! distribution is 1–3 (this community and wider), or it is 4 and the user's
//! organisation is a member of its sharing group. Each attribute, object and
//! report is then checked the same way, with 5 ("inherit") meaning "as visible as
//! its parent". Site admins see everything. Sightings follow MISP's default
//! sightings policy: the event's owner sees all of them, everyone else only their
//! own organisation's.
//!
//! The API calls [`redact_event`] on every event it returns or counts, and
//! [`attribute_visible`] on every attribute it returns from a search, so that an
//! invisible element is indistinguishable from a missing one.

use crate::model::{Attribute, Event, Object, SharingGroup};
use uuid::Uuid;

/// The reader: an organisation, and whether the user is a site admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub org: Uuid,
    pub site_admin: bool,
}

fn sg_member(v: &Viewer, sg: Option<&SharingGroup>) -> bool {
    sg.is_some_and(|sg| sg.active && sg.has_org(&v.org))
}

/// The owner organisation of an event on this node (MISP's `org_id`).
pub fn owner(event: &Event) -> Option<Uuid> {
    event.org.as_ref().map(|o| o.uuid)
}

fn owns(v: &Viewer, event: &Event) -> bool {
    v.site_admin || owner(event) == Some(v.org)
}

/// Whether the event itself (its header) is visible.
pub fn event_visible(v: &Viewer, event: &Event) -> bool {
    owns(v, event)
        || matches!(event.distribution, 1..=3)
        || (event.distribution == 4 && sg_member(v, event.sharing_group.as_ref()))
}

fn element_visible(v: &Viewer, event: &Event, dist: u8, sg: Option<&SharingGroup>) -> bool {
    owns(v, event) || matches!(dist, 1..=3 | 5) || (dist == 4 && sg_member(v, sg))
}

/// Whether an attribute of a visible event is visible (`object` is its parent
/// object, if any, which must be visible too).
pub fn attribute_visible(
    v: &Viewer,
    event: &Event,
    object: Option<&Object>,
    a: &Attribute,
) -> bool {
    event_visible(v, event)
        && object
            .is_none_or(|o| element_visible(v, event, o.distribution, o.sharing_group.as_ref()))
        && element_visible(v, event, a.distribution, a.sharing_group.as_ref())
}

/// The event as `v` may see it, or `None` if the event is invisible: invisible
/// attributes, objects and reports removed, sightings limited, the attribute count
/// recomputed from what remains.
pub fn redact_event(v: &Viewer, mut event: Event) -> Option<Event> {
    if !event_visible(v, &event) {
        return None;
    }
    let owner = owns(v, &event);
    let snapshot = event.clone();
    let keep_sightings = |a: &mut Attribute| {
        if !owner {
            a.sightings
                .retain(|s| s.org.as_ref().is_some_and(|o| o.uuid == v.org));
        }
    };
    event
        .attributes
        .retain(|a| element_visible(v, &snapshot, a.distribution, a.sharing_group.as_ref()));
    event.attributes.iter_mut().for_each(keep_sightings);
    event
        .objects
        .retain(|o| element_visible(v, &snapshot, o.distribution, o.sharing_group.as_ref()));
    for o in &mut event.objects {
        o.attributes
            .retain(|a| element_visible(v, &snapshot, a.distribution, a.sharing_group.as_ref()));
        o.attributes.iter_mut().for_each(keep_sightings);
        // A reference to something removed would leak its uuid.
    }
    let visible: std::collections::HashSet<Uuid> = event
        .all_attributes()
        .map(|a| a.uuid)
        .chain(event.objects.iter().map(|o| o.uuid))
        .collect();
    for o in &mut event.objects {
        o.references
            .retain(|r| visible.contains(&r.referenced_uuid));
    }
    event
        .reports
        .retain(|r| element_visible(v, &snapshot, r.distribution, r.sharing_group.as_ref()));
    event.attribute_count = Some(event.all_attributes().filter(|a| !a.deleted).count() as u64);
    Some(event)
}

/// Whether `v` may modify the event: site admins, and the organisation that
/// created it (MISP's `orgc`), for roles with `perm_modify_org`.
///
/// A `locked` event came from another node, which vouches for it with its seal:
/// nobody here may change it (a local edit would re-seal it as this node and take
/// over its origin); corrections go back to the origin.
pub fn may_modify(v: &Viewer, role: &super::roles::Role, event: &Event) -> bool {
    if !role.may_write() || event.locked {
        return false;
    }
    v.site_admin
        || (role.perm_modify_org
            && event.orgc.as_ref().map(|o| o.uuid).or(owner(event)) == Some(v.org))
}
