//! What every page shares: the chrome around it (title, navigation, asset version), the
//! notices and the error page, and how times, durations, sizes and ids are shown.
//! Pure formatting: nothing here reads the coordinator.

use askama::Template;
use blanket_core::TaskState;
use blanket_core::wire::WorkerStatus;
use time::OffsetDateTime;
use time::macros::format_description;

use super::assets;

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Tasks,
    Workers,
    TaskTypes,
    Settings,
    About,
    None,
}

/// The frame of every page: its title, the current navigation entry and the asset version
/// that makes static URLs change whenever a static file does.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub title: String,
    pub nav: Nav,
    pub version: &'static str,
}

impl Chrome {
    /// The chrome of a page called `title` under navigation entry `nav`.
    pub fn new(title: impl Into<String>, nav: Nav) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            version: assets::version(),
        }
    }

    /// Whether `entry` (`tasks`, `workers`, `types`, `about`) is the current one.
    pub fn is(&self, entry: &str) -> bool {
        matches!(
            (self.nav, entry),
            (Nav::Tasks, "tasks")
                | (Nav::Workers, "workers")
                | (Nav::TaskTypes, "types")
                | (Nav::Settings, "settings")
                | (Nav::About, "about")
        )
    }
}

/// A notice for the `#flash` area.
#[derive(Template)]
#[template(path = "flash.html")]
pub struct Flash {
    pub error: bool,
    pub message: String,
    /// An optional link (href, text) after the message.
    pub link: Option<(String, String)>,
}

/// The page shown when a plain (non-htmx) request fails.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

/// A moment, shown relative ("3 min ago") with the exact time on hover.
#[derive(Clone, Debug, Default)]
pub struct Moment {
    /// `2024-05-01T12:30:05Z`, for `<time datetime>`; empty when there is no moment.
    pub iso: String,
    /// `2024-05-01 12:30:05 UTC`.
    pub exact: String,
    /// `3 min ago`, or `—` when there is no moment.
    pub relative: String,
    /// Seconds from the moment to `now` by the server's clock, for `<time data-age>`: the page
    /// ages it by the time that passes in the browser, never by the browser's own clock,
    /// which may be off (ui/static/app.js).
    pub age: i64,
}

impl Moment {
    /// `ts` (unix seconds, 0 meaning "never") seen from `now`.
    pub fn at(ts: i64, now: i64) -> Moment {
        if ts <= 0 {
            return Moment {
                iso: String::new(),
                exact: String::new(),
                relative: "—".into(),
                age: 0,
            };
        }
        Moment {
            iso: iso_time(ts),
            exact: exact_time(ts),
            relative: relative_time(ts, now),
            age: now.saturating_sub(ts),
        }
    }

    /// Whether there is a moment to show.
    pub fn is_set(&self) -> bool {
        !self.iso.is_empty()
    }
}

/// `2024-05-01T12:30:05Z`.
pub fn iso_time(ts: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_default()
}

/// `2024-05-01 12:30:05 UTC`.
pub fn exact_time(ts: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_default()
}

/// `2024-05-01T12:30`, the value a `datetime-local` input shows.
pub fn input_time(ts: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_default()
}

/// "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago", or the date when older.
pub fn relative_time(ts: i64, now: i64) -> String {
    let seconds = now.saturating_sub(ts);
    if seconds < 0 {
        return format!("in {}", short_duration(seconds.unsigned_abs()));
    }
    match seconds {
        0..=4 => "just now".into(),
        5..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        86_400..=2_591_999 => match seconds / 86_400 {
            1 => "yesterday".into(),
            days => format!("{days} days ago"),
        },
        _ => exact_time(ts).get(..10).unwrap_or_default().to_string(),
    }
}

/// `12 s`, `3 min 05 s`, `2 h 04 min`, `3 d 4 h`.
pub fn short_duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 if seconds.is_multiple_of(60) => format!("{} min", seconds / 60),
        60..=3599 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        3600..=86_399 if seconds.is_multiple_of(3600) => format!("{} h", seconds / 3600),
        3600..=86_399 => format!("{} h {:02} min", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{} d {} h", seconds / 86_400, (seconds % 86_400) / 3600),
    }
}

/// How long a task ran (or has been running): empty before it started.
pub fn task_duration(task: &blanket_core::wire::Task, now: i64) -> String {
    if task.started_ts <= 0 {
        return String::new();
    }
    let end = if task.finished_ts > 0 {
        task.finished_ts
    } else if task.state.is_terminal() {
        task.last_updated_ts
    } else {
        now
    };
    short_duration(u64::try_from(end.saturating_sub(task.started_ts)).unwrap_or(0))
}

/// `512 B`, `1.5 KiB`, `50.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: a float's rounding is fine for one decimal.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The first 8 characters of an id, as the old UI showed them.
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A state's CSS class suffix (`waiting`, `timedout`, ...).
pub fn state_class(state: TaskState) -> &'static str {
    match state {
        TaskState::Waiting => "waiting",
        TaskState::Claimed => "claimed",
        TaskState::Running => "running",
        TaskState::Success => "success",
        TaskState::Error => "error",
        TaskState::Stopped => "stopped",
        TaskState::TimedOut => "timedout",
    }
}

/// A worker status as the UI writes it.
pub fn worker_status(status: WorkerStatus) -> &'static str {
    match status {
        WorkerStatus::Running => "running",
        WorkerStatus::Stopping => "stopping",
        WorkerStatus::Stopped => "stopped",
        WorkerStatus::Lost => "lost",
    }
}

/// `100000` as `100,000`.
pub fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Tags as the old UI joined them: `bash, unix`.
pub fn join_tags(tags: &[String]) -> String {
    tags.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_like_a_person_would_say_them() {
        let now = 1_700_000_000;
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now - 42, now), "42 s ago");
        assert_eq!(relative_time(now - 180, now), "3 min ago");
        assert_eq!(relative_time(now - 5 * 3600, now), "5 h ago");
        assert_eq!(relative_time(now - 86_400, now), "yesterday");
        assert_eq!(relative_time(now - 3 * 86_400, now), "3 days ago");
        assert_eq!(relative_time(now - 90 * 86_400, now), "2023-08-16");
        assert_eq!(relative_time(now + 30, now), "in 30 s");
    }

    #[test]
    fn exact_and_iso_times_are_utc() {
        assert_eq!(exact_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(iso_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(input_time(1_700_000_000), "2023-11-14T22:13");
        assert_eq!(Moment::at(0, 5).relative, "—");
        assert!(!Moment::at(0, 5).is_set());
    }

    #[test]
    fn a_moment_carries_its_age_by_the_servers_clock() {
        let now = 1_700_000_000;
        let moment = Moment::at(now - 3, now);
        assert_eq!(moment.age, 3);
        assert_eq!(moment.relative, "just now");
        assert_eq!(Moment::at(now - 42, now).age, 42);
        assert_eq!(Moment::at(now + 30, now).age, -30);
    }

    #[test]
    fn durations_and_sizes_are_short() {
        assert_eq!(short_duration(12), "12 s");
        assert_eq!(short_duration(185), "3 min 05 s");
        assert_eq!(short_duration(7440), "2 h 04 min");
        assert_eq!(short_duration(300), "5 min");
        assert_eq!(short_duration(3600), "1 h");
        assert_eq!(short_duration(3 * 86_400 + 4 * 3600), "3 d 4 h");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(50 * 1024 * 1024), "50.0 MiB");
    }

    #[test]
    fn big_numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn short_ids_are_the_first_eight_characters() {
        assert_eq!(short_id("66a1b2c3d4e5f60718293a4b"), "66a1b2c3");
        assert_eq!(short_id("abc"), "abc");
    }
}
