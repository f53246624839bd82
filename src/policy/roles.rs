//! Roles and their permissions, with MISP's default role ids so that
//! `users/view/me` answers look like MISP's to PyMISP.

use serde::Serialize;

/// What a role may do. Field names are MISP's (`perm_add`, …) because they are
/// shown to clients in `users/view/me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Role {
    #[serde(serialize_with = "crate::model::wire::ser_u64_str")]
    pub id: u64,
    pub name: &'static str,
    /// Create events and attributes.
    pub perm_add: bool,
    /// Modify what the user created.
    pub perm_modify: bool,
    /// Modify anything the user's organisation created.
    pub perm_modify_org: bool,
    pub perm_publish: bool,
    pub perm_tagger: bool,
    /// Create and edit tags in the catalogue (`tags/add`; a new tag attached
    /// by name): MISP gives it to admins, org admins and sync users.
    pub perm_tag_editor: bool,
    pub perm_sighting: bool,
    /// Manage users of the own organisation.
    pub perm_admin: bool,
    /// Everything, everywhere.
    pub perm_site_admin: bool,
    /// A peer node's identity; never valid on the analyst API.
    pub perm_sync: bool,
    pub perm_auth: bool,
}

const fn role(id: u64, name: &'static str, p: [bool; 9]) -> Role {
    Role {
        id,
        name,
        perm_add: p[0],
        perm_modify: p[1],
        perm_modify_org: p[2],
        perm_publish: p[3],
        perm_tagger: p[4],
        perm_tag_editor: p[6] || p[7] || p[8],
        perm_sighting: p[5],
        perm_admin: p[6],
        perm_site_admin: p[7],
        perm_sync: p[8],
        perm_auth: true,
    }
}

//                                       add    modify modorg publish tagger sighting admin  site   sync
pub const ADMIN: Role = role(
    1,
    "admin",
    [true, true, true, true, true, true, true, true, false],
);
pub const ORG_ADMIN: Role = role(
    2,
    "Org Admin",
    [true, true, true, true, true, true, true, false, false],
);
pub const USER: Role = role(
    3,
    "User",
    [true, true, true, false, true, true, false, false, false],
);
pub const PUBLISHER: Role = role(
    4,
    "Publisher",
    [true, true, true, true, true, true, false, false, false],
);
pub const SYNC: Role = role(
    5,
    "Sync user",
    [false, false, false, false, false, false, false, false, true],
);
pub const READ_ONLY: Role = role(
    6,
    "Read Only",
    [
        false, false, false, false, false, false, false, false, false,
    ],
);

pub const ALL: [Role; 6] = [ADMIN, ORG_ADMIN, USER, PUBLISHER, SYNC, READ_ONLY];

pub fn by_id(id: u64) -> Option<Role> {
    ALL.into_iter().find(|r| r.id == id)
}

impl Role {
    /// Whether this role may change anything through the analyst API. Sync roles
    /// belong to peers, which use the federation endpoints only.
    pub fn may_write(&self) -> bool {
        !self.perm_sync && (self.perm_add || self.perm_site_admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_and_sync_cannot_write() {
        assert!(!READ_ONLY.may_write());
        assert!(!SYNC.may_write());
        assert!(USER.may_write() && PUBLISHER.may_write() && ADMIN.may_write());
        const { assert!(!USER.perm_publish && PUBLISHER.perm_publish) };
        assert_eq!(by_id(4), Some(PUBLISHER));
        assert_eq!(by_id(99), None);
    }
}
