//! Case records in the store: [`CaseStore`] gives [`Store`] typed calls for
//! [`CaseRecord`]s over its opaque ones (the store keeps a record's sealed JSON
//! and indexes it by uuid, case and time; it does not know what a case is).

use super::CaseRecord;
use crate::store::{CaseRecordKey, Store, StoreError};
use uuid::Uuid;

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        tree: "case_records",
        reason: e.to_string(),
    }
}

/// Typed case-record calls on the store.
pub trait CaseStore {
    /// Stores a case record and logs it, flushed; `false` when a record with its
    /// uuid is already held.
    fn put_case_record(&self, rec: &CaseRecord) -> Result<bool, StoreError>;
    /// The case record with this uuid.
    fn case_record(&self, uuid: &Uuid) -> Result<Option<CaseRecord>, StoreError>;
    /// The records of case `case` (its request and everything after), oldest
    /// first.
    fn case_records(&self, case: &Uuid) -> Result<Vec<CaseRecord>, StoreError>;
}

impl CaseStore for Store {
    fn put_case_record(&self, rec: &CaseRecord) -> Result<bool, StoreError> {
        // An encoding failure is an error, never an empty record.
        let raw = serde_json::to_vec(rec).map_err(|e| StoreError::Encode {
            what: "case record",
            reason: e.to_string(),
        })?;
        self.put_case_record_raw(
            CaseRecordKey {
                uuid: rec.uuid,
                case: rec.case,
                created: rec.created,
            },
            raw,
        )
    }

    fn case_record(&self, uuid: &Uuid) -> Result<Option<CaseRecord>, StoreError> {
        self.case_record_raw(uuid)?
            .map(|raw| serde_json::from_slice(&raw).map_err(corrupt))
            .transpose()
    }

    fn case_records(&self, case: &Uuid) -> Result<Vec<CaseRecord>, StoreError> {
        self.case_records_raw(case)?
            .iter()
            .map(|raw| serde_json::from_slice(raw).map_err(corrupt))
            .collect()
    }
}
