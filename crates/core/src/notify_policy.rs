//! When a finished task earns a desktop notification, what it says, and how a burst of
//! finishes becomes one summary. Separate so the rules are pure and tested here, while the
//! desktop shell only delivers; it shows nothing, reads no file and keeps no clock itself.

use std::time::{Duration, Instant};

use crate::config::{NotifyConfig, NotifyMode};
use crate::state::TaskState;
use crate::wire::TaskFinished;

/// A burst ends once no task has finished for this long.
pub const BURST_QUIET: Duration = Duration::from_secs(2);
/// A burst that keeps going is cut after this long, so a steady stream still notifies.
pub const BURST_LONGEST: Duration = Duration::from_secs(8);

/// How a task ended, as far as notifications care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `SUCCESS`.
    Succeeded,
    /// `ERROR`.
    Failed,
    /// `TIMEDOUT`.
    TimedOut,
}

/// What to show: one task's end, or a summary of several.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// One task ended.
    One(TaskFinished),
    /// Several tasks ended close together.
    Summary {
        /// How many ended.
        finished: usize,
        /// How many of them failed or timed out.
        failed: usize,
    },
}

/// Finishes waiting to be shown, grouped into bursts. Feed it with [`Burst::push`], ask it
/// when to look again with [`Burst::due`], and take the notice with [`Burst::take_due`].
#[derive(Debug, Default)]
pub struct Burst {
    pending: Vec<TaskFinished>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

impl Outcome {
    /// The outcome of a terminal state that notifies; `None` for `STOPPED` and live states.
    pub fn of(state: TaskState) -> Option<Outcome> {
        match state {
            TaskState::Success => Some(Outcome::Succeeded),
            TaskState::Error => Some(Outcome::Failed),
            TaskState::TimedOut => Some(Outcome::TimedOut),
            _ => None,
        }
    }

    /// Whether this counts as a failure (offered "Retry", counted in a summary).
    pub fn is_failure(self) -> bool {
        self != Outcome::Succeeded
    }

    /// The words after the type's name in a title.
    pub fn phrase(self) -> &'static str {
        match self {
            Outcome::Succeeded => "finished",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
        }
    }
}

/// Whether `finished` earns a notification under `config`: it ended `SUCCESS`, `ERROR` or
/// `TIMEDOUT` (not a cancel), ran at least `min_seconds`, passes the mode, and the window is
/// not focused unless `when_focused` says to notify anyway.
pub fn wants_notice(config: &NotifyConfig, finished: &TaskFinished, window_focused: bool) -> bool {
    let Some(outcome) = Outcome::of(finished.state) else {
        return false;
    };
    let mode_allows = match config.mode {
        NotifyMode::All => true,
        NotifyMode::FailuresOnly => outcome.is_failure(),
        NotifyMode::None => false,
    };
    mode_allows
        && !finished.by_user
        && (config.when_focused || !window_focused)
        && run_seconds(finished) >= config.min_seconds
}

/// How long the task ran, in seconds: from its start (its claim) to its end; 0 when it never
/// started.
pub fn run_seconds(finished: &TaskFinished) -> u64 {
    if finished.started_ts <= 0 {
        return 0;
    }
    u64::try_from(finished.finished_ts - finished.started_ts).unwrap_or(0)
}

/// A duration the way people say it: `45 s`, `3 min 12 s`, `2 h 5 min`.
pub fn human_duration(seconds: u64) -> String {
    let (hours, minutes, rest) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{rest} s"),
        (0, _) => format!("{minutes} min {rest} s"),
        _ => format!("{hours} h {minutes} min"),
    }
}

impl Notice {
    /// The notification's title and body. `last_stderr_line` is shown for a failure.
    pub fn text(&self, last_stderr_line: Option<&str>) -> (String, String) {
        match self {
            Notice::One(finished) => {
                let outcome = Outcome::of(finished.state).unwrap_or(Outcome::Failed);
                let title = format!("{} {}", finished.task_type, outcome.phrase());
                let mut body = format!(
                    "{} after {}",
                    finished.state.as_str(),
                    human_duration(run_seconds(finished))
                );
                if outcome.is_failure()
                    && let Some(line) = last_stderr_line.map(str::trim).filter(|l| !l.is_empty())
                {
                    body.push('\n');
                    body.push_str(line);
                }
                (title, body)
            }
            Notice::Summary { finished, failed } => {
                let tasks = if *finished == 1 { "task" } else { "tasks" };
                let title = match failed {
                    0 => format!("{finished} {tasks} finished"),
                    _ => format!("{finished} {tasks} finished, {failed} failed"),
                };
                (title, "Open Blanket to see them".to_owned())
            }
        }
    }

    /// Whether the notice is about one failed task, so it offers "Retry".
    pub fn offers_retry(&self) -> bool {
        match self {
            Notice::One(finished) => Outcome::of(finished.state).is_some_and(Outcome::is_failure),
            Notice::Summary { .. } => false,
        }
    }
}

impl Burst {
    /// Adds a finish that passed [`wants_notice`], seen at `now`.
    pub fn push(&mut self, finished: TaskFinished, now: Instant) {
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        self.pending.push(finished);
    }

    /// When the pending burst is due to be shown; `None` when nothing is pending.
    pub fn due(&self) -> Option<Instant> {
        let (first, last) = (self.first_at?, self.last_at?);
        Some((last + BURST_QUIET).min(first + BURST_LONGEST))
    }

    /// The notice for the pending finishes when they are due at `now`, emptying the burst:
    /// one task's own notice, or a summary of several.
    pub fn take_due(&mut self, now: Instant) -> Option<Notice> {
        if self.due().is_none_or(|due| now < due) {
            return None;
        }
        self.first_at = None;
        self.last_at = None;
        let mut pending = std::mem::take(&mut self.pending);
        if pending.len() == 1 {
            return pending.pop().map(Notice::One);
        }
        let failed = pending
            .iter()
            .filter(|finished| Outcome::of(finished.state).is_some_and(Outcome::is_failure))
            .count();
        Some(Notice::Summary {
            finished: pending.len(),
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TaskId;

    fn finished(state: TaskState, seconds: i64) -> TaskFinished {
        TaskFinished {
            id: TaskId::generate(),
            task_type: "render".into(),
            state,
            exit_code: Some(1),
            started_ts: 1_000,
            finished_ts: 1_000 + seconds,
            result_dir: "/tmp/r".into(),
            reason: None,
            by_user: false,
        }
    }

    fn config(mode: NotifyMode) -> NotifyConfig {
        NotifyConfig {
            mode,
            min_seconds: 10,
            when_focused: false,
        }
    }

    #[test]
    fn a_long_failure_notifies() {
        assert!(wants_notice(
            &config(NotifyMode::All),
            &finished(TaskState::Error, 60),
            false
        ));
    }

    #[test]
    fn a_task_shorter_than_the_threshold_does_not_notify() {
        let short = finished(TaskState::Success, 9);
        assert!(!wants_notice(&config(NotifyMode::All), &short, false));
        let at_threshold = finished(TaskState::Success, 10);
        assert!(wants_notice(&config(NotifyMode::All), &at_threshold, false));
    }

    #[test]
    fn a_cancel_by_the_user_does_not_notify() {
        let mut cancelled = finished(TaskState::Stopped, 60);
        assert!(!wants_notice(&config(NotifyMode::All), &cancelled, false));
        cancelled.state = TaskState::Error;
        cancelled.by_user = true;
        assert!(!wants_notice(&config(NotifyMode::All), &cancelled, false));
    }

    #[test]
    fn a_focused_window_silences_notices_unless_asked() {
        let task = finished(TaskState::Error, 60);
        assert!(!wants_notice(&config(NotifyMode::All), &task, true));
        let mut config = config(NotifyMode::All);
        config.when_focused = true;
        assert!(wants_notice(&config, &task, true));
    }

    #[test]
    fn modes_pick_what_notifies() {
        let success = finished(TaskState::Success, 60);
        let timeout = finished(TaskState::TimedOut, 60);
        assert!(!wants_notice(
            &config(NotifyMode::FailuresOnly),
            &success,
            false
        ));
        assert!(wants_notice(
            &config(NotifyMode::FailuresOnly),
            &timeout,
            false
        ));
        assert!(!wants_notice(&config(NotifyMode::None), &timeout, false));
    }

    #[test]
    fn a_failure_shows_type_outcome_duration_and_last_stderr_line() {
        let notice = Notice::One(finished(TaskState::Error, 192));
        let (title, body) = notice.text(Some("  disk full \n"));
        assert_eq!(title, "render failed");
        assert_eq!(body, "ERROR after 3 min 12 s\ndisk full");
        assert!(notice.offers_retry());
    }

    #[test]
    fn a_success_leaves_stderr_out_and_offers_no_retry() {
        let notice = Notice::One(finished(TaskState::Success, 45));
        assert_eq!(
            notice.text(Some("a warning")),
            (
                "render finished".to_owned(),
                "SUCCESS after 45 s".to_owned()
            )
        );
        assert!(!notice.offers_retry());
    }

    #[test]
    fn a_burst_of_finishes_becomes_one_summary() {
        let start = Instant::now();
        let mut burst = Burst::default();
        for index in 0..12u64 {
            let state = if index < 2 {
                TaskState::Error
            } else {
                TaskState::Success
            };
            burst.push(
                finished(state, 60),
                start + Duration::from_millis(100 * index),
            );
        }
        let last = start + Duration::from_millis(1100);
        assert_eq!(burst.due(), Some(last + BURST_QUIET));
        assert_eq!(burst.take_due(last + Duration::from_secs(1)), None);
        let notice = burst.take_due(last + BURST_QUIET);
        assert_eq!(
            notice,
            Some(Notice::Summary {
                finished: 12,
                failed: 2
            })
        );
        assert_eq!(
            notice.map(|notice| notice.text(None).0),
            Some("12 tasks finished, 2 failed".to_owned())
        );
        assert_eq!(burst.due(), None);
    }

    #[test]
    fn a_lone_finish_is_shown_as_itself_after_the_quiet_time() {
        let start = Instant::now();
        let mut burst = Burst::default();
        let task = finished(TaskState::TimedOut, 60);
        burst.push(task.clone(), start);
        assert_eq!(burst.take_due(start + BURST_QUIET), Some(Notice::One(task)));
    }

    #[test]
    fn a_steady_stream_is_cut_after_the_longest_burst() {
        let start = Instant::now();
        let mut burst = Burst::default();
        for second in 0..20 {
            burst.push(
                finished(TaskState::Success, 60),
                start + Duration::from_secs(second),
            );
        }
        assert_eq!(burst.due(), Some(start + BURST_LONGEST));
    }

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(61), "1 min 1 s");
        assert_eq!(human_duration(7_500), "2 h 5 min");
    }
}
