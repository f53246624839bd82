//! Policy: pure decisions about who may see, change or receive what. No I/O;
//! the API (and later the federation sender) call these functions, so the rules
//! live in one place and are property-tested.

pub mod federation;
pub mod roles;
pub mod visibility;

pub use federation::{outbound, Decision, LocalState, Peer, Reason};
pub use roles::Role;
pub use visibility::{attribute_visible, event_visible, may_modify, redact_event, Viewer};
