//! The one lifecycle transition table, used everywhere a state changes.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LifecycleState {
    Initial,
    Active,
    Locked,
    Frozen,
    Consumed,
    Pending,
    Archived,
}

impl LifecycleState {
    /// "an Active", "a Locked": the state with its article, for messages.
    pub fn with_article(self) -> String {
        let name = format!("{self:?}");
        let article = if name.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
        format!("{article} {name}")
    }

    pub const ALL: [LifecycleState; 7] = [
        LifecycleState::Initial,
        LifecycleState::Active,
        LifecycleState::Locked,
        LifecycleState::Frozen,
        LifecycleState::Consumed,
        LifecycleState::Pending,
        LifecycleState::Archived,
    ];

    /// The transition table. Consumed is terminal except for archiving;
    /// Archived is terminal.
    pub fn can_transition_to(self, to: LifecycleState) -> bool {
        use LifecycleState::*;
        matches!(
            (self, to),
            (Initial, Active)
                | (Initial, Pending)
                | (Pending, Active)
                | (Pending, Archived)
                | (Active, Locked)
                | (Active, Frozen)
                | (Active, Consumed)
                | (Active, Pending)
                | (Active, Archived)
                | (Locked, Active)
                | (Locked, Consumed)
                | (Frozen, Active)
                | (Frozen, Archived)
                | (Consumed, Archived)
        )
    }

    /// Whether operations may change or consume a resource in this state.
    pub fn is_live(self) -> bool {
        self == LifecycleState::Active
    }

    /// A stable small number for canonical encodings and VM registers.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<LifecycleState> {
        LifecycleState::ALL.get(code as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_is_terminal_and_consumed_only_archives() {
        for to in LifecycleState::ALL {
            assert!(!LifecycleState::Archived.can_transition_to(to));
            assert_eq!(LifecycleState::Consumed.can_transition_to(to), to == LifecycleState::Archived);
        }
    }

    #[test]
    fn no_self_transitions() {
        for s in LifecycleState::ALL {
            assert!(!s.can_transition_to(s));
        }
    }

    #[test]
    fn codes_round_trip() {
        for s in LifecycleState::ALL {
            assert_eq!(LifecycleState::from_code(s.code()), Some(s));
        }
        assert_eq!(LifecycleState::from_code(7), None);
    }
}
