//! Who may attach and remove tags: MISP's rules, as pure functions.
//!
//! A *global* tag is shared content: it travels with the event and can change
//! who receives it (`tlp:red`), so attaching or removing one needs the right to
//! modify the event ([`may_modify`]). A *local* tag never leaves this node, but
//! it still decides what this node does with the event: a local `tlp:red` keeps
//! it home, a local `exercise:*` tag hides it from the indicator exports. MISP
//! therefore lets only users of the host organisation (the organisation that
//! runs the instance, `MISP.host_org_id`) and site admins attach or remove local
//! tags (`TagsController::attachTagToObject` / `removeTagFromObject`). Without
//! that rule another organisation could release an event's TLP:RED by removing
//! its local tag, or block and hide another organisation's indicators.
//!
//! Both rules need the event to be visible to the caller first; the API checks
//! that before it gets here (an invisible target is answered as a missing one).

use super::roles::Role;
use super::visibility::{may_modify, Viewer};
use crate::model::Event;
use uuid::Uuid;

/// Whether `v` may attach a tag to `event` (or one of its elements): a global tag
/// needs [`may_modify`]; a local tag needs the host organisation (`host_org`,
/// this node's own) or a site admin, and a role that may write.
pub fn may_attach(v: &Viewer, role: &Role, event: &Event, local: bool, host_org: Uuid) -> bool {
    if local {
        role.may_write() && (v.site_admin || v.org == host_org)
    } else {
        may_modify(v, role, event)
    }
}

/// Whether `v` may remove a tag from `event`: the same rule as attaching, decided
/// by whether the tag being removed is local.
pub fn may_remove(
    v: &Viewer,
    role: &Role,
    event: &Event,
    tag_is_local: bool,
    host_org: Uuid,
) -> bool {
    may_attach(v, role, event, tag_is_local, host_org)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Org;

    fn event(owner: Uuid, locked: bool) -> Event {
        let org = Org {
            id: None,
            name: "A".into(),
            uuid: owner,
            local: true,
        };
        let mut e = Event::new("t");
        e.org = Some(org.clone());
        e.orgc = Some(org);
        e.distribution = 3;
        e.locked = locked;
        e
    }

    #[test]
    fn local_tags_belong_to_the_host_organisation() {
        let host = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let admin_role = super::super::roles::ADMIN;
        let user_role = super::super::roles::USER;
        let own = event(host, false);
        let foreign = event(other, false);
        let host_user = Viewer {
            org: host,
            site_admin: false,
        };
        let other_user = Viewer {
            org: other,
            site_admin: false,
        };
        // The host organisation may keep anything visible home, even another
        // organisation's event (that is what local tags are for).
        assert!(may_attach(&host_user, &user_role, &foreign, true, host));
        assert!(may_remove(&host_user, &user_role, &foreign, true, host));
        // Another organisation may not, even on its own event hosted here.
        assert!(!may_attach(&other_user, &user_role, &own, true, host));
        assert!(!may_remove(&other_user, &user_role, &own, true, host));
        assert!(!may_remove(&other_user, &user_role, &foreign, true, host));
        // Global tags: the creator organisation only.
        assert!(may_attach(&other_user, &user_role, &foreign, false, host));
        assert!(!may_attach(&host_user, &user_role, &foreign, false, host));
        // Site admins may do both.
        let admin = Viewer {
            org: other,
            site_admin: true,
        };
        assert!(may_remove(&admin, &admin_role, &own, true, host));
    }
}
