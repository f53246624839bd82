//! Incident-support case records: stored whole as the sealed JSON they arrived
//! or were made as, indexed by case in time order, and logged in the change log
//! (kind `CaseRecord`) so the federation feed can offer them to the nodes they
//! are addressed to.
//!
//! The store does not read case records: it keeps their bytes and the three
//! fields it indexes by ([`CaseRecordKey`]). What a record means, and its rules,
//! are `crate::support`, which stores and reads them through these calls.

use super::keys;
use super::record::{Change, ChangeKind};
use super::txn::Txn;
use super::write::Durability;
use super::{corrupt, Store, StoreError, T};
use uuid::Uuid;

/// What the store indexes a case record by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseRecordKey {
    /// The record's own uuid.
    pub uuid: Uuid,
    /// The case it belongs to (the uuid of the case's request record).
    pub case: Uuid,
    /// When it was made, epoch seconds (orders a case's records).
    pub created: u64,
}

impl Store {
    /// Stores a case record (`raw`, its sealed JSON) and logs it, flushed.
    /// `false` when a record with its uuid is already held (a record is
    /// immutable: the same uuid is the same record, or a forgery that its
    /// signature check already refused).
    pub fn put_case_record_raw(&self, k: CaseRecordKey, raw: Vec<u8>) -> Result<bool, StoreError> {
        let mut tx = Txn::begin(self)?;
        if self.t.case_records.get(k.uuid.as_bytes())?.is_some() {
            return Ok(false);
        }
        let mut idx = k.case.as_bytes().to_vec();
        idx.extend_from_slice(&k.created.to_be_bytes());
        idx.extend_from_slice(k.uuid.as_bytes());
        tx.w.put(T::CaseRecords, k.uuid.as_bytes(), raw);
        tx.w.put(T::CaseIndex, idx, []);
        tx.log(Change {
            kind: ChangeKind::CaseRecord,
            event: k.uuid,
            timestamp: k.created,
        })?;
        tx.commit(Durability::Flush)?;
        Ok(true)
    }

    /// The sealed JSON of the case record with this uuid.
    pub fn case_record_raw(&self, uuid: &Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .t
            .case_records
            .get(uuid.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// The sealed JSON of the records of case `case` (its request and
    /// everything after), oldest first.
    pub fn case_records_raw(&self, case: &Uuid) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.case_index.scan_prefix(case.as_bytes()) {
            let (k, _) = item?;
            let rec = keys::uuid_at(&k, 24).ok_or_else(|| corrupt("case_index", "short key"))?;
            if let Some(r) = self.case_record_raw(&rec)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The uuids of every case held (every request record: the one whose uuid
    /// is its case's), oldest first, from the case index alone.
    pub fn case_uuids(&self) -> Result<Vec<Uuid>, StoreError> {
        let mut out: Vec<(u64, Uuid)> = Vec::new();
        for item in self.t.case_index.iter() {
            let (k, _) = item?;
            let short = || corrupt("case_index", "short key");
            let case = keys::uuid_at(&k, 0).ok_or_else(short)?;
            let rec = keys::uuid_at(&k, 24).ok_or_else(short)?;
            let created = k.get(16..24).and_then(keys::be_u64).ok_or_else(short)?;
            if rec == case {
                out.push((created, rec));
            }
        }
        out.sort();
        Ok(out.into_iter().map(|(_, u)| u).collect())
    }
}
