//! Organisations, users and API keys.
//!
//! API keys are 40 random alphanumeric characters (MISP's format), shown once and
//! stored only as their SHA-256: with ~238 bits of entropy a slow password hash
//! adds nothing, and a fast one keeps per-request authentication cheap.

use super::keys::be_u64;
use super::txn::{self, Txn};
use super::write::Durability;
use super::{corrupt, Store, StoreError, T};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `meta` key of the default role id (0: none).
const DEFAULT_ROLE: &str = "default_role";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    pub id: u64,
    pub uuid: Uuid,
    pub name: String,
    /// An organisation with users on this node (not one only known from data).
    pub local: bool,
    pub description: String,
    pub nationality: String,
    pub sector: String,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub email: String,
    pub org: Uuid,
    pub role_id: u64,
    pub disabled: bool,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthKeyRecord {
    pub id: u64,
    pub uuid: Uuid,
    pub user_id: u64,
    /// First and last four characters, as MISP shows them.
    pub key_start: String,
    pub key_end: String,
    pub created: u64,
    /// 0 = never.
    pub expiration: u64,
    pub comment: String,
    /// Reserved for the read-only flag of MISP auth keys.
    pub read_only: bool,
}

/// A new API key: 40 characters from [A-Za-z0-9], from OS randomness.
pub fn generate_key() -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(40);
    while out.len() < 40 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| StoreError::Randomness(e.to_string()))?;
        // Rejection sampling keeps the distribution uniform: 248 = 4 * 62.
        for b in buf {
            if b < 248 && out.len() < 40 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Store {
    pub(crate) fn next_id(&self, counter: &str) -> Result<u64, StoreError> {
        let mut key = vec![T::Meta as u8];
        key.extend_from_slice(counter.as_bytes());
        let v = self.t.data.update_and_fetch(key, |old| {
            let n = old.and_then(be_u64).unwrap_or(0) + 1;
            Some(n.to_be_bytes().to_vec())
        })?;
        v.as_deref()
            .and_then(be_u64)
            .ok_or_else(|| corrupt("meta", "counter"))
    }

    fn put_json(&self, t: T, key: &[u8], v: &impl Serialize) -> Result<(), StoreError> {
        // In a write transaction like every other write, so a backup's walk
        // (which holds the writer lock) never sees half of the store change.
        let mut tx = Txn::begin(self)?;
        tx.w.put(t, key, txn::json(v, "account record")?);
        tx.commit(Durability::Flush)
    }

    /// Adds an organisation (or returns the existing one with that uuid).
    pub fn add_org(&self, uuid: Uuid, name: &str, local: bool) -> Result<OrgRecord, StoreError> {
        if let Some(o) = self.org(&uuid)? {
            return Ok(o);
        }
        let name = self.free_org_name(name, &uuid)?;
        let rec = OrgRecord {
            id: self.next_id("id:org")?,
            uuid,
            name,
            local,
            description: String::new(),
            nationality: String::new(),
            sector: String::new(),
            created: crate::model::time::now_secs(),
        };
        self.put_json(T::Orgs, uuid.as_bytes(), &rec)?;
        Ok(rec)
    }

    /// Writes an edited organisation, its name checked as `add_org` checks a
    /// new one (not empty, no other organisation's).
    pub fn update_org(&self, rec: &OrgRecord) -> Result<(), StoreError> {
        let mut rec = rec.clone();
        rec.name = self.free_org_name(&rec.name, &rec.uuid)?;
        self.put_json(T::Orgs, rec.uuid.as_bytes(), &rec)
    }

    /// `name` trimmed, if organisation `uuid` may bear it: not empty, and no
    /// other organisation's (names compare case-insensitively).
    fn free_org_name(&self, name: &str, uuid: &Uuid) -> Result<String, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Refused {
                field: "Organisation",
                reason: "Organisation: name: must not be empty".into(),
            });
        }
        if self
            .orgs()?
            .iter()
            .any(|o| o.uuid != *uuid && o.name.eq_ignore_ascii_case(name))
        {
            return Err(StoreError::Refused {
                field: "Organisation",
                reason: format!(
                    "Organisation: name: an organisation named \"{name}\" already exists"
                ),
            });
        }
        Ok(name.to_owned())
    }

    pub fn org(&self, uuid: &Uuid) -> Result<Option<OrgRecord>, StoreError> {
        match self.t.orgs.get(uuid.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("orgs", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    pub fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.orgs.iter() {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("orgs", e.to_string()))?);
        }
        out.sort_by_key(|o: &OrgRecord| o.id);
        Ok(out)
    }

    pub fn org_by_id(&self, id: u64) -> Result<Option<OrgRecord>, StoreError> {
        Ok(self.orgs()?.into_iter().find(|o| o.id == id))
    }

    pub fn add_user(&self, email: &str, org: Uuid, role_id: u64) -> Result<UserRecord, StoreError> {
        let email = email.trim().to_lowercase();
        if !email.contains('@') {
            return Err(StoreError::Refused {
                field: "User",
                reason: "User: email: not an e-mail address".into(),
            });
        }
        if self.users()?.iter().any(|u| u.email == email) {
            return Err(StoreError::Refused {
                field: "User",
                reason: format!("User: email: {email} already exists"),
            });
        }
        if self.org(&org)?.is_none() {
            return Err(StoreError::Refused {
                field: "User",
                reason: "User: org_id: unknown organisation".into(),
            });
        }
        if crate::policy::roles::by_id(role_id).is_none() {
            return Err(StoreError::Refused {
                field: "User",
                reason: format!("User: role_id: unknown role {role_id}"),
            });
        }
        let rec = UserRecord {
            id: self.next_id("id:user")?,
            email,
            org,
            role_id,
            disabled: false,
            created: crate::model::time::now_secs(),
        };
        self.put_json(T::Users, &rec.id.to_be_bytes(), &rec)?;
        Ok(rec)
    }

    /// The role new users get when none is given (MISP's `default_role`
    /// admin setting); `None` until a site admin sets one.
    pub fn default_role(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .t
            .meta
            .get(DEFAULT_ROLE)?
            .and_then(|v| be_u64(&v))
            .filter(|id| *id != 0))
    }

    /// Sets (or, with `None`, unsets) the default role; an unknown role is
    /// refused.
    pub fn set_default_role(&self, role: Option<u64>) -> Result<(), StoreError> {
        if let Some(id) = role {
            if crate::policy::roles::by_id(id).is_none() {
                return Err(StoreError::Refused {
                    field: "Role",
                    reason: format!("Role: id: unknown role {id}"),
                });
            }
        }
        let mut tx = Txn::begin(self)?;
        tx.w.put(T::Meta, DEFAULT_ROLE, role.unwrap_or(0).to_be_bytes());
        tx.commit(Durability::Flush)
    }

    /// Writes an edited user, checked as `add_user` checks a new one: an
    /// e-mail address (normalised) that no other user has, a known
    /// organisation and role.
    pub fn update_user(&self, rec: &UserRecord) -> Result<(), StoreError> {
        let mut rec = rec.clone();
        rec.email = rec.email.trim().to_lowercase();
        if !rec.email.contains('@') {
            return Err(StoreError::Refused {
                field: "User",
                reason: "User: email: not an e-mail address".into(),
            });
        }
        if self
            .users()?
            .iter()
            .any(|u| u.email == rec.email && u.id != rec.id)
        {
            return Err(StoreError::Refused {
                field: "User",
                reason: format!("User: email: {} already exists", rec.email),
            });
        }
        if self.org(&rec.org)?.is_none() {
            return Err(StoreError::Refused {
                field: "User",
                reason: "User: org_id: unknown organisation".into(),
            });
        }
        if crate::policy::roles::by_id(rec.role_id).is_none() {
            return Err(StoreError::Refused {
                field: "User",
                reason: format!("User: role_id: unknown role {}", rec.role_id),
            });
        }
        self.put_json(T::Users, &rec.id.to_be_bytes(), &rec)
    }

    pub fn user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        match self.t.users.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("users", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.users.iter() {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("users", e.to_string()))?);
        }
        Ok(out)
    }

    /// Creates an API key for `user_id`; returns the key (shown once) and its record.
    pub fn add_auth_key(
        &self,
        user_id: u64,
        comment: &str,
        expiration: u64,
    ) -> Result<(String, AuthKeyRecord), StoreError> {
        if self.user(user_id)?.is_none() {
            return Err(StoreError::Refused {
                field: "AuthKey",
                reason: format!("AuthKey: user_id: unknown user {user_id}"),
            });
        }
        let key = generate_key()?;
        let rec = AuthKeyRecord {
            id: self.next_id("id:authkey")?,
            uuid: Uuid::new_v4(),
            user_id,
            key_start: key[..4].to_owned(),
            key_end: key[36..].to_owned(),
            created: crate::model::time::now_secs(),
            expiration,
            comment: comment.to_owned(),
            read_only: false,
        };
        self.put_json(T::AuthKeys, &key_hash(&key), &rec)?;
        Ok((key, rec))
    }

    /// The user an API key belongs to, if the key exists, is not expired and the
    /// user is enabled.
    pub fn authenticate(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Option<(UserRecord, AuthKeyRecord)>, StoreError> {
        let Some(v) = self.t.authkeys.get(key_hash(key.trim()))? else {
            return Ok(None);
        };
        let k: AuthKeyRecord =
            serde_json::from_slice(&v).map_err(|e| corrupt("authkeys", e.to_string()))?;
        if k.expiration != 0 && k.expiration <= now {
            return Ok(None);
        }
        match self.user(k.user_id)? {
            Some(u) if !u.disabled => Ok(Some((u, k))),
            _ => Ok(None),
        }
    }

    pub fn auth_keys(&self) -> Result<Vec<AuthKeyRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.authkeys.iter() {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("authkeys", e.to_string()))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_40_alphanumerics_and_distinct() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn authenticate_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Default::default()).unwrap();
        let org = s.add_org(Uuid::new_v4(), "CERT-A", true).unwrap();
        let u = s.add_user("Analyst@cert-a.example", org.uuid, 3).unwrap();
        let (key, _) = s.add_auth_key(u.id, "test", 0).unwrap();
        assert_eq!(
            s.authenticate(&key, 1).unwrap().unwrap().0.email,
            "analyst@cert-a.example"
        );
        assert!(s
            .authenticate("x".repeat(40).as_str(), 1)
            .unwrap()
            .is_none());
        // The key itself is nowhere in the database.
        for item in s.t.data.iter() {
            let (k, v) = item.unwrap();
            assert!(!String::from_utf8_lossy(&v).contains(&key));
            assert!(!String::from_utf8_lossy(&k).contains(&key));
        }
        let (k2, _) = s.add_auth_key(u.id, "expiring", 10).unwrap();
        assert!(s.authenticate(&k2, 11).unwrap().is_none());
        assert!(
            s.add_org(Uuid::new_v4(), "cert-a", true).is_err(),
            "names are unique"
        );
    }
}
