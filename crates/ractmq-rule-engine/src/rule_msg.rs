//! What a rule's actor is told, apart from the actor (`actor.rs`) so that the rule it serves (`live.rs`) can
//! send to it without the two modules depending on each other.

use crate::actions::Retry;

/// What a rule's actor is told.
pub enum RuleMsg {
    /// An action failed: try it again after the backoff.
    Retry(Retry),
    /// The backoff passed: try now.
    Attempt(Retry),
}

// Local only: never sent to another node.
impl ractor::Message for RuleMsg {}
