//! Policy: pure decisions about who may see, change or receive what. No I/O;
//! the API (and later the federation sender) call these functions, so the rules
//! live in one place and are property-tested.

pub mod federation;
pub mod roles;
pub mod sharing;
pub mod tagging;
pub mod visibility;

pub use federation::{outbound, Decision, LocalState, Peer, Reason};
pub use roles::Role;
pub use sharing::may_use_sharing_group;
pub use visibility::{attribute_visible, event_visible, may_modify, redact_event, Viewer};

/// The tag namespace that marks an event as part of a coordinated exercise
/// (MISP's `exercise` taxonomy, e.g. `exercise:cyber-europe="2026"`).
pub const EXERCISE_NAMESPACE: &str = "exercise";

/// Whether `event` is exercise data: it carries a tag of the `exercise`
/// namespace (or the bare tag `exercise`), case-insensitively. Exercise events
/// are labelled by that tag wherever the event is shown, and left out of the
/// indicator formats (CSV, text) unless asked for explicitly, so drill data
/// never reaches a blocklist or an IDS.
pub fn is_exercise(event: &crate::model::Event) -> bool {
    event.tags.iter().any(|t| {
        let n = t.name.trim().to_ascii_lowercase();
        n == EXERCISE_NAMESPACE
            || n.strip_prefix(EXERCISE_NAMESPACE)
                .is_some_and(|rest| rest.starts_with(':'))
    })
}

#[cfg(test)]
mod exercise_tests {
    use super::*;

    #[test]
    fn exercise_tags_are_recognised_and_lookalikes_are_not() {
        let mut e = crate::model::Event::new("x");
        assert!(!is_exercise(&e));
        e.tags.push(crate::model::Tag::named("exercises-planned"));
        assert!(!is_exercise(&e));
        e.tags
            .push(crate::model::Tag::named("Exercise:cyber-europe=\"2026\""));
        assert!(is_exercise(&e));
    }
}
