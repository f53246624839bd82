//! Who may put content into a sharing group: MISP's rule
//! (`SharingGroup::checkIfAuthorised`), as a pure function.
//!
//! A distribution-4 element is visible to the group's organisations, and the
//! federation sends it to the group's members. Letting a caller name a group it
//! is not in would let it push content to organisations it has no relationship
//! with, and the answer would show it the group's name, releasability and
//! members. So a caller may use a group only if it could see the group: site
//! admins, the group's owner organisation, and its member organisations, while
//! the group is active. Anything else answers exactly like an unknown group.

use super::visibility::Viewer;
use crate::model::SharingGroup;

/// Whether `v` may give an element sharing group `sg`.
pub fn may_use_sharing_group(v: &Viewer, sg: &SharingGroup) -> bool {
    v.site_admin || (sg.active && sg.has_org(&v.org))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn members_owner_and_admins_only() {
        let owner = Uuid::from_u128(1);
        let member = Uuid::from_u128(2);
        let outsider = Uuid::from_u128(3);
        let mut sg: SharingGroup = serde_json::from_value(serde_json::json!({
            "name": "g", "uuid": Uuid::from_u128(9), "organisation_uuid": owner, "active": true,
            "SharingGroupOrg": [{"extend": false, "Organisation": {"name": "M", "uuid": member}}]
        }))
        .unwrap();
        let v = |org, site_admin| Viewer { org, site_admin };
        assert!(may_use_sharing_group(&v(owner, false), &sg));
        assert!(may_use_sharing_group(&v(member, false), &sg));
        assert!(!may_use_sharing_group(&v(outsider, false), &sg));
        assert!(may_use_sharing_group(&v(outsider, true), &sg));
        sg.active = false;
        assert!(!may_use_sharing_group(&v(member, false), &sg));
    }
}
