//! The task state machine: the states of the API contract and which transitions are allowed.
//! Pure logic, so the rules are tested without a database; `store` applies them inside the
//! transaction that changes a task.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where a task is in its life. `as_str` is the spelling in SQL and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    Waiting,
    Claimed,
    Running,
    Success,
    Error,
    Stopped,
    TimedOut,
}

impl TaskState {
    /// Every state, in life-cycle order.
    pub const ALL: [TaskState; 7] = [
        TaskState::Waiting,
        TaskState::Claimed,
        TaskState::Running,
        TaskState::Success,
        TaskState::Error,
        TaskState::Stopped,
        TaskState::TimedOut,
    ];

    /// The wire and database spelling, e.g. `WAITING`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "WAITING",
            TaskState::Claimed => "CLAIMED",
            TaskState::Running => "RUNNING",
            TaskState::Success => "SUCCESS",
            TaskState::Error => "ERROR",
            TaskState::Stopped => "STOPPED",
            TaskState::TimedOut => "TIMEDOUT",
        }
    }

    /// Whether the task is over: nothing moves it out of a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Error | TaskState::Stopped | TaskState::TimedOut
        )
    }

    /// Checks that a task in `self` may move to `to`.
    ///
    /// # Errors
    /// `Conflict` naming both states when the move is not allowed.
    pub fn check_transition(self, to: TaskState) -> Result<(), Error> {
        use TaskState as S;
        let allowed = matches!(
            (self, to),
            (S::Waiting, S::Claimed | S::Stopped)
                | (S::Claimed, S::Running)
                // A claimed task whose process could not start ends ERROR; a cancel or a lost
                // worker ends it too.
                | (S::Claimed, S::Error | S::Stopped)
                | (S::Running, S::Success | S::Error | S::Stopped | S::TimedOut)
                // A lost worker's tasks go back to the queue.
                | (S::Claimed | S::Running, S::Waiting)
        );
        if allowed {
            Ok(())
        } else if self.is_terminal() {
            Err(Error::Conflict(format!(
                "task is already {} and cannot become {}: a finished task never changes state again",
                self.as_str(),
                to.as_str()
            )))
        } else {
            Err(Error::Conflict(format!(
                "task is {} and cannot become {}",
                self.as_str(),
                to.as_str()
            )))
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = Error;

    /// Parses a state name, ignoring case (`running` and `RUNNING` both work).
    fn from_str(text: &str) -> Result<Self, Error> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown task state {text:?}: use one of WAITING, CLAIMED, RUNNING, SUCCESS, ERROR, STOPPED, TIMEDOUT"
                ))
            })
    }
}

impl serde::Serialize for TaskState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TaskState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn spelling_round_trips_for_every_state() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
            assert_eq!(
                state.as_str().to_lowercase().parse::<TaskState>().unwrap(),
                state
            );
        }
        assert!(
            "DONE"
                .parse::<TaskState>()
                .unwrap_err()
                .to_string()
                .contains("WAITING")
        );
    }

    #[test]
    fn life_cycle_moves_are_allowed() {
        Waiting.check_transition(Claimed).unwrap();
        Claimed.check_transition(Running).unwrap();
        Running.check_transition(Success).unwrap();
        Running.check_transition(TimedOut).unwrap();
        Claimed.check_transition(Error).unwrap();
        Waiting.check_transition(Stopped).unwrap();
        Running.check_transition(Waiting).unwrap();
    }

    #[test]
    fn terminal_states_never_move() {
        for from in [Success, Error, Stopped, TimedOut] {
            for to in TaskState::ALL {
                let error = from.check_transition(to).unwrap_err();
                assert!(matches!(error, crate::Error::Conflict(_)));
            }
        }
    }

    #[test]
    fn skipping_steps_is_refused() {
        assert!(Waiting.check_transition(Running).is_err());
        assert!(Waiting.check_transition(Success).is_err());
        assert!(Claimed.check_transition(Success).is_err());
        assert!(Running.check_transition(Claimed).is_err());
    }
}
