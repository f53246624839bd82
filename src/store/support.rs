//! Incident-support case records ([`crate::support`]): stored whole as the
//! sealed JSON they arrived or were made as, indexed by case in time order, and
//! logged in the change log (kind `CaseRecord`) so the federation feed can offer
//! them to the nodes they are addressed to.

use super::keys;
use super::record::{Change, ChangeKind};
use super::{corrupt, Store, StoreError, T};
use crate::support::CaseRecord;
use uuid::Uuid;

fn key(t: T, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.push(t as u8);
    v.extend_from_slice(k);
    v
}

impl Store {
    /// Stores a case record and logs it, flushed. `false` when a record with its
    /// uuid is already held (a record is immutable: the same uuid is the same
    /// record, or a forgery that its signature check already refused).
    pub fn put_case_record(&self, rec: &CaseRecord) -> Result<bool, StoreError> {
        let raw = serde_json::to_vec(rec).map_err(|e| corrupt("case_records", e.to_string()))?;
        {
            let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            if self.t.case_records.get(rec.uuid.as_bytes())?.is_some() {
                return Ok(false);
            }
            let seq = self
                .t
                .meta
                .get("seq")?
                .and_then(|v| keys::be_u64(&v))
                .unwrap_or(0)
                + 1;
            let change = Change {
                kind: ChangeKind::CaseRecord,
                event: rec.uuid,
                timestamp: rec.created,
            };
            let mut idx = rec.case.as_bytes().to_vec();
            idx.extend_from_slice(&rec.created.to_be_bytes());
            idx.extend_from_slice(rec.uuid.as_bytes());
            let mut batch = sled::Batch::default();
            batch.insert(key(T::CaseRecords, rec.uuid.as_bytes()), raw);
            batch.insert(key(T::CaseIndex, &idx), &[][..]);
            batch.insert(
                key(T::Changes, &seq.to_be_bytes()),
                postcard::to_stdvec(&change).map_err(|e| corrupt("changes", e.to_string()))?,
            );
            batch.insert(key(T::Meta, b"seq"), &seq.to_be_bytes());
            self.t.data.apply_batch(batch)?;
        }
        self.flush()?;
        Ok(true)
    }

    /// The case record with this uuid.
    pub fn case_record(&self, uuid: &Uuid) -> Result<Option<CaseRecord>, StoreError> {
        match self.t.case_records.get(uuid.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("case_records", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// The records of case `case` (its request and everything after), oldest
    /// first.
    pub fn case_records(&self, case: &Uuid) -> Result<Vec<CaseRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.case_index.scan_prefix(case.as_bytes()) {
            let (k, _) = item?;
            let rec = keys::uuid_at(&k, 24).ok_or_else(|| corrupt("case_index", "short key"))?;
            if let Some(r) = self.case_record(&rec)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The uuids of every case held (every request record), oldest first.
    pub fn case_uuids(&self) -> Result<Vec<Uuid>, StoreError> {
        let mut out: Vec<(u64, Uuid)> = Vec::new();
        for item in self.t.case_records.iter() {
            let (_, v) = item?;
            let r: CaseRecord =
                serde_json::from_slice(&v).map_err(|e| corrupt("case_records", e.to_string()))?;
            if r.uuid == r.case {
                out.push((r.created, r.uuid));
            }
        }
        out.sort();
        Ok(out.into_iter().map(|(_, u)| u).collect())
    }
}
