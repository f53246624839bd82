//! The MISP core format: types, (de)serialisation tolerant of MISP's many encodings,
//! the type/category matrix, value normalisation and the one validator.
//!
//! Nothing here does I/O; the store, the API and the federation all build on it.

pub mod attribute;
pub mod edit;
pub mod event;
pub mod object;
pub mod org;
pub mod parse;
pub mod report;
pub mod seal;
pub mod sharing_group;
pub mod sighting;
pub mod tag;
pub mod tag_name;
pub mod template;
pub mod time;
pub mod types;
pub mod validate;
pub mod value;
pub mod wire;

pub use attribute::Attribute;
pub use event::Event;
pub use object::{Object, ObjectReference};
pub use org::Org;
pub use report::EventReport;
pub use seal::Seal;
pub use sharing_group::SharingGroup;
pub use sighting::Sighting;
pub use tag::Tag;
