//! The tag catalogue: MISP's tag table. Every tag name this node has stored,
//! once, with a local numeric id, a colour and the table's properties
//! (`exportable`, `hide_tag`, `local_only`, `numerical_value`, and the
//! `org_id`/`user_id` restrictions on who may attach it).
//!
//! Events carry tags by name (that is what travels and what the origin
//! signs: `seal::signed_form` signs a tag as its name and relationship only),
//! so the catalogue is a local table beside them, like MISP's: a tag is
//! entered the first time an event that carries it is stored (in the same
//! batch), or by `tags/add`; views take the id and colour from it. Names are
//! matched case-insensitively (MISP's `captureTag` compares `LOWER(name)`),
//! and the first spelling seen is kept.
//!
//! | key | value |
//! |---|---|
//! | `tags`: folded name | [`TagRecord`] (JSON) |
//! | `ids`: [`idkind::TAG`] ‖ id | folded name |

use super::keys::{self, idkind};
use super::txn::{self, Txn};
use super::{corrupt, Durability, Store, StoreError, T};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A row of the catalogue, MISP's `tags` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub id: u64,
    pub name: String,
    pub colour: String,
    pub exportable: bool,
    pub hide_tag: bool,
    /// Only this organisation's users may attach it (0: anyone).
    pub org_id: u64,
    /// Only this user may attach it (0: anyone).
    pub user_id: u64,
    /// May be attached only as a local tag.
    pub local_only: bool,
    pub numerical_value: Option<String>,
}

/// MISP's colour for a tag created without one: `#` and the first six hex
/// digits of the MD5 of its name (`Tag::tagColor`), so a tag has the same
/// colour here as on every MISP that created it the same way.
pub fn default_colour(name: &str) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(name.as_bytes());
    format!("#{:02x}{:02x}{:02x}", d[0], d[1], d[2])
}

/// A colour as MISP accepts one: `#` and six hex digits.
pub fn valid_colour(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
}

impl TagRecord {
    /// A new row for `name` (id not yet given), with MISP's defaults.
    pub fn new(name: &str) -> Self {
        TagRecord {
            id: 0,
            name: name.trim().to_owned(),
            colour: default_colour(name.trim()),
            exportable: true,
            hide_tag: false,
            org_id: 0,
            user_id: 0,
            local_only: false,
            numerical_value: None,
        }
    }
}

impl Store {
    /// The catalogue row of `name` (any case).
    pub fn tag_by_name(&self, name: &str) -> Result<Option<TagRecord>, StoreError> {
        match self.t.tags.get(keys::fold(name.trim()).as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("tags", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// The catalogue row with local id `id`.
    pub fn tag_by_id(&self, id: u64) -> Result<Option<TagRecord>, StoreError> {
        match self.t.ids.get(keys::id_key(idkind::TAG, id))? {
            Some(name) => self.tag_by_name(&String::from_utf8_lossy(&name)),
            None => Ok(None),
        }
    }

    /// The whole catalogue, by folded name. Its size is the number of distinct
    /// tags (thousands), not of tagged records.
    pub fn tag_catalogue(&self) -> Result<BTreeMap<String, TagRecord>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.t.tags.iter() {
            let (k, v) = item?;
            let rec: TagRecord =
                serde_json::from_slice(&v).map_err(|e| corrupt("tags", e.to_string()))?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), rec);
        }
        Ok(out)
    }

    /// `tags/add`: enters `rec` (a new id; a missing or invalid colour gets
    /// MISP's default). A name already in the catalogue (any case) answers
    /// the row there, unchanged, as MISP's REST `tags/add` does.
    pub fn add_tag(&self, mut rec: TagRecord) -> Result<TagRecord, StoreError> {
        rec.name =
            crate::model::tag_name::normalise(&rec.name).map_err(|e| StoreError::Refused {
                field: "Tag",
                reason: format!("Tag: name: {e}"),
            })?;
        if !valid_colour(&rec.colour) {
            rec.colour = default_colour(&rec.name);
        }
        let mut tx = Txn::begin(self)?;
        if let Some(existing) = self.tag_by_name(&rec.name)? {
            return Ok(existing);
        }
        rec.id = last_tag_id(self)? + 1;
        tx.w.put(T::Meta, TAG_COUNTER, rec.id.to_be_bytes());
        put(&mut tx, &rec)?;
        tx.commit(Durability::Flush)?;
        Ok(rec)
    }

    /// `tags/edit`: writes `rec` over the row with its id. A new name is
    /// checked as a new tag's would be, and refused while the old one is on
    /// any stored element: events carry tags by name, under their origin's
    /// seal, so the node cannot rename them as MISP (which links by id) does.
    /// `None`: no row has that id.
    pub fn update_tag(&self, mut rec: TagRecord) -> Result<Option<TagRecord>, StoreError> {
        let refused = |reason: String| StoreError::Refused {
            field: "Tag",
            reason,
        };
        let mut tx = Txn::begin(self)?;
        let Some(old) = self.tag_by_id(rec.id)? else {
            return Ok(None);
        };
        rec.name = crate::model::tag_name::normalise(&rec.name)
            .map_err(|e| refused(format!("Tag: name: {e}")))?;
        if !valid_colour(&rec.colour) {
            return Err(refused(
                "Tag: colour: Colour has to be in the RGB format (#FFFFFF)".into(),
            ));
        }
        let (old_key, new_key) = (keys::fold(&old.name), keys::fold(&rec.name));
        if old_key != new_key {
            if self.tag_by_name(&rec.name)?.is_some() {
                return Err(refused("Tag: name: A similar name already exists.".into()));
            }
            if self.tag_in_use(&old.name)? {
                return Err(refused(format!(
                    "Tag: name: \"{}\" is attached to stored data, which carries tags by name under its origin's seal; create a new tag instead of renaming this one",
                    old.name
                )));
            }
            tx.w.del(T::Tags, old_key.as_bytes());
        }
        put(&mut tx, &rec)?;
        tx.commit(Durability::Flush)?;
        Ok(Some(rec))
    }

    /// `tags/delete`: removes the row, refused while the tag is on any
    /// stored element (see [`Store::update_tag`]).
    /// `None`: no row has that id.
    pub fn delete_tag(&self, id: u64) -> Result<Option<TagRecord>, StoreError> {
        let mut tx = Txn::begin(self)?;
        let Some(old) = self.tag_by_id(id)? else {
            return Ok(None);
        };
        if self.tag_in_use(&old.name)? {
            return Err(StoreError::Refused {
                field: "Tag",
                reason: format!(
                    "Tag: \"{}\" is attached to stored data, which carries tags under its origin's seal; remove it from the data first",
                    old.name
                ),
            });
        }
        tx.w.del(T::Tags, keys::fold(&old.name).as_bytes());
        tx.w.del(T::Ids, keys::id_key(idkind::TAG, id));
        tx.commit(Durability::Flush)?;
        Ok(Some(old))
    }

    /// Whether any stored event or attribute carries `name` (one index probe).
    pub fn tag_in_use(&self, name: &str) -> Result<bool, StoreError> {
        let prefix = keys::value_prefix(&keys::fold(name.trim()));
        let mut hits = self.t.idx_tag.scan_prefix(&prefix);
        Ok(hits.next().is_some())
    }
}

/// The catalogue's id counter, in `meta`. Kept apart from the transaction's
/// counters (`txn::Counters`): an event write adopts a plan that saved those
/// itself, and the catalogue entries join that batch afterwards.
const TAG_COUNTER: &str = "id:tag";

/// The last tag id given (read under the writer lock, so it is current).
fn last_tag_id(store: &Store) -> Result<u64, StoreError> {
    Ok(store
        .t
        .meta
        .get(TAG_COUNTER)?
        .and_then(|v| keys::be_u64(&v))
        .unwrap_or(0))
}

fn put(tx: &mut Txn<'_>, rec: &TagRecord) -> Result<(), StoreError> {
    let key = keys::fold(&rec.name);
    tx.w.put(T::Tags, key.as_bytes(), txn::json(rec, "tag")?);
    tx.w.put(T::Ids, keys::id_key(idkind::TAG, rec.id), key.into_bytes());
    Ok(())
}

impl Txn<'_> {
    /// Enters every tag of `names` (display spellings) the catalogue lacks, in
    /// this transaction: called by every event write before it commits.
    pub(crate) fn catalogue_tags<'a>(
        &mut self,
        store: &Store,
        names: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut last = last_tag_id(store)?;
        let first = last;
        for (name, colour) in names {
            let key = keys::fold(name.trim());
            if key.is_empty() || !seen.insert(key.clone()) {
                continue;
            }
            if store.t.tags.get(key.as_bytes())?.is_some() {
                continue;
            }
            let mut rec = TagRecord::new(name);
            if valid_colour(colour) {
                rec.colour = colour.to_owned();
            }
            last += 1;
            rec.id = last;
            put(self, &rec)?;
        }
        if last != first {
            self.w.put(T::Meta, TAG_COUNTER, last.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misp_default_colour() {
        // md5("tlp:white") = 8a1f3b… in MISP's Tag::tagColor.
        let d = default_colour("tlp:white");
        assert!(valid_colour(&d), "{d}");
        assert_eq!(d, default_colour("tlp:white"));
        assert_ne!(d, default_colour("tlp:green"));
        assert!(!valid_colour("#12345"));
        assert!(!valid_colour("red"));
    }

    /// A tag that stored data carries is entered with the event (same batch)
    /// and can be neither renamed nor deleted: events carry it by name.
    #[test]
    fn tags_on_stored_events_are_catalogued_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        let ev = crate::model::parse::parse_event(
            br##"{"Event":{"info":"x","Tag":[{"name":"Case:One"}],
                 "Attribute":[{"type":"ip-dst","value":"192.0.2.1","Tag":[{"name":"case:two","colour":"#123456"}]}]}}"##,
            1 << 20,
        )
        .unwrap();
        store.put_event(ev, Durability::Flush).unwrap();
        let one = store.tag_by_name("case:one").unwrap().unwrap();
        assert_eq!(one.colour, default_colour("Case:One"));
        let two = store.tag_by_name("CASE:TWO").unwrap().unwrap();
        assert_eq!(two.colour, "#123456");
        assert_ne!(one.id, two.id);
        assert!(store.tag_in_use("case:one").unwrap());
        let mut renamed = one.clone();
        renamed.name = "case:renamed".into();
        assert!(matches!(
            store.update_tag(renamed),
            Err(StoreError::Refused { .. })
        ));
        assert!(matches!(
            store.delete_tag(two.id),
            Err(StoreError::Refused { .. })
        ));
        assert_eq!(store.tag_by_id(two.id).unwrap(), Some(two));
    }

    #[test]
    fn catalogue_add_edit_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        let a = store.add_tag(TagRecord::new("Campaign:Alpha")).unwrap();
        assert_eq!(a.id, 1);
        // Any case finds it; adding it again answers the same row.
        assert_eq!(
            store.tag_by_name("campaign:alpha").unwrap(),
            Some(a.clone())
        );
        assert_eq!(store.add_tag(TagRecord::new("CAMPAIGN:ALPHA")).unwrap(), a);
        let b = store.add_tag(TagRecord::new("campaign:beta")).unwrap();
        assert_eq!(b.id, 2);
        assert_eq!(store.tag_by_id(2).unwrap(), Some(b.clone()));
        // Renamed onto another tag's name: refused.
        let mut clash = b.clone();
        clash.name = "campaign:ALPHA".into();
        assert!(matches!(
            store.update_tag(clash),
            Err(StoreError::Refused { .. })
        ));
        let mut renamed = b.clone();
        renamed.name = "campaign:gamma".into();
        renamed.hide_tag = true;
        let got = store.update_tag(renamed).unwrap();
        assert_eq!(store.tag_by_id(2).unwrap(), got);
        assert!(store.tag_by_name("campaign:beta").unwrap().is_none());
        store.delete_tag(2).unwrap();
        assert!(store.tag_by_id(2).unwrap().is_none());
        assert_eq!(store.tag_catalogue().unwrap().len(), 1);
    }
}
