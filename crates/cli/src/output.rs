//! How the client commands print for people: tables sized to the terminal, colour only on a
//! terminal and never with `NO_COLOR`, ages and durations. Output meant for scripts (`-q`,
//! `--json`) does not come through here and never changes with the terminal.

use std::io::IsTerminal;

use blanket_core::TaskState;
use blanket_core::wire::WorkerStatus;

/// ANSI colours used for states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// Success, a running worker.
    Green,
    /// Failures and timeouts.
    Red,
    /// Waiting.
    Yellow,
    /// Running (shown cyan, which reads better than blue on dark terminals).
    Blue,
    /// Over without a verdict: stopped.
    Dim,
    /// Headers and labels.
    Bold,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
            Colour::Blue => "36",
            Colour::Dim => "2",
            Colour::Bold => "1",
        }
    }
}

/// Whether standard output gets colour: only on a terminal, and not when `NO_COLOR` is set
/// to anything but the empty string (no-color.org).
pub fn colour_on_stdout() -> bool {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_colour && std::io::stdout().is_terminal()
}

/// `text` wrapped in `colour` when `enabled`.
pub fn paint(text: &str, colour: Colour, enabled: bool) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", colour.code())
    } else {
        text.to_owned()
    }
}

/// The colour a task state is shown in.
pub fn state_colour(state: TaskState) -> Colour {
    match state {
        TaskState::Success => Colour::Green,
        TaskState::Error | TaskState::TimedOut => Colour::Red,
        TaskState::Running | TaskState::Claimed => Colour::Blue,
        TaskState::Waiting => Colour::Yellow,
        TaskState::Stopped => Colour::Dim,
    }
}

/// One `label  value` line of a detail view, the label bold and padded to `width`.
pub fn labelled(label: &str, value: &str, width: usize, colour: bool) -> String {
    // Padded by hand: escape codes would count towards a `{:<width$}` width.
    let padding = " ".repeat(width.saturating_sub(label.chars().count()).max(1));
    format!("{}{padding}{value}\n", paint(label, Colour::Bold, colour))
}

/// A worker status as the API spells it.
pub fn worker_status(status: WorkerStatus) -> &'static str {
    match status {
        WorkerStatus::Running => "running",
        WorkerStatus::Stopping => "stopping",
        WorkerStatus::Stopped => "stopped",
        WorkerStatus::Lost => "lost",
    }
}

/// The width tables must fit: `COLUMNS` when set, else the terminal's when standard output
/// is one, else none (a pipe gets whole rows).
pub fn table_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|columns| *columns > 0)
    {
        return Some(columns);
    }
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout).map(|(width, _)| usize::from(width.0))
}

/// How a column gives way when the table is too wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Never narrower than its content.
    Fixed,
    /// Cut to at least this many characters, ending in `…`.
    Ellipsis(usize),
    /// Cut to at least this many characters, without a mark (an id prefix stays usable).
    Prefix(usize),
}

/// One table cell: its text and, when the terminal takes colour, its colour.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl Cell {
    /// A cell without colour.
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            colour: None,
        }
    }

    /// A cell shown in `colour` on a colour terminal.
    pub fn coloured(text: impl Into<String>, colour: Colour) -> Cell {
        Cell {
            text: text.into(),
            colour: Some(colour),
        }
    }
}

/// A table with a header row, laid out to a width.
pub struct Table {
    columns: Vec<(&'static str, Fit)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers and how each gives way.
    pub fn new(columns: Vec<(&'static str, Fit)>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as lines: columns two spaces apart, no trailing spaces, cut to `width`
    /// where the columns allow, coloured when `colour`.
    pub fn render(&self, width: Option<usize>, colour: bool) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(index, (header, _))| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(index))
                    .map(|cell| cell.text.chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        if let Some(width) = width {
            shrink(&mut widths, &self.columns, width);
        }
        let mut out = String::new();
        let headers: Vec<Cell> = self
            .columns
            .iter()
            .map(|(header, _)| Cell::coloured(*header, Colour::Bold))
            .collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            let last = row.len().saturating_sub(1);
            for (index, cell) in row.iter().enumerate() {
                let column_width = widths.get(index).copied().unwrap_or(0);
                let fit = self
                    .columns
                    .get(index)
                    .map_or(Fit::Fixed, |column| column.1);
                let text = cut(&cell.text, column_width, fit);
                let padding = if index == last {
                    0
                } else {
                    column_width.saturating_sub(text.chars().count())
                };
                match cell.colour {
                    Some(painted) => line.push_str(&paint(&text, painted, colour)),
                    None => line.push_str(&text),
                }
                if index != last {
                    line.push_str(&" ".repeat(padding + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Narrows the columns that may give way until the row fits `width`: `…` columns first,
/// widest first, then id prefixes.
fn shrink(widths: &mut [usize], columns: &[(&'static str, Fit)], width: usize) {
    let total =
        |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    for pass_prefix in [false, true] {
        while total(widths) > width {
            let candidate = columns
                .iter()
                .enumerate()
                .filter_map(|(index, (_, fit))| {
                    let minimum = match (fit, pass_prefix) {
                        (Fit::Ellipsis(minimum), false) | (Fit::Prefix(minimum), true) => *minimum,
                        _ => return None,
                    };
                    let current = widths.get(index).copied().unwrap_or(0);
                    (current > minimum).then_some((index, current))
                })
                .max_by_key(|(_, current)| *current);
            let Some((index, _)) = candidate else {
                break;
            };
            if let Some(current) = widths.get_mut(index) {
                *current -= 1;
            }
        }
    }
}

/// `text` cut to `width` characters the way `fit` says.
fn cut(text: &str, width: usize, fit: Fit) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    match fit {
        Fit::Fixed => text.to_owned(),
        Fit::Prefix(_) => text.chars().take(width).collect(),
        Fit::Ellipsis(_) => {
            let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
    }
}

/// How long ago `ts` (unix seconds) was, from `now`: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn age(now: i64, ts: i64) -> String {
    if ts <= 0 {
        return "-".to_owned();
    }
    format!("{} ago", short_duration(now.saturating_sub(ts).max(0)))
}

/// A duration in seconds, short: `42s`, `5m07s`, `3h12m`, `2d04h`.
pub fn short_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// Unix seconds as `2024-05-01 12:30:00 UTC`.
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let second_of_day = ts.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so printing a date needs no time-zone database.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut table = Table::new(vec![
            ("ID", Fit::Prefix(12)),
            ("TYPE", Fit::Ellipsis(6)),
            ("STATE", Fit::Fixed),
        ]);
        table.push(vec![
            Cell::plain("5f5e10000000000000000001"),
            Cell::plain("a_rather_long_type_name"),
            Cell::coloured("SUCCESS", Colour::Green),
        ]);
        table
    }

    #[test]
    fn a_table_without_a_width_keeps_whole_cells_and_no_trailing_spaces() {
        let text = table().render(None, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID                        TYPE                     STATE"
        );
        assert_eq!(
            lines[1],
            "5f5e10000000000000000001  a_rather_long_type_name  SUCCESS"
        );
    }

    #[test]
    fn a_narrow_table_cuts_flexible_columns_first_then_ids() {
        let text = table().render(Some(40), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().all(|line| line.chars().count() <= 40),
            "{text}"
        );
        assert!(lines[1].contains('…'), "{text}");
        assert!(lines[1].starts_with("5f5e10000000"), "{text}");
    }

    #[test]
    fn colour_wraps_the_padded_text_only_when_enabled() {
        let text = table().render(None, true);
        assert!(text.contains("\x1b[32mSUCCESS\x1b[0m"), "{text:?}");
        assert!(!table().render(None, false).contains('\x1b'));
    }

    #[test]
    fn durations_and_ages_are_short() {
        assert_eq!(short_duration(42), "42s");
        assert_eq!(short_duration(307), "5m07s");
        assert_eq!(short_duration(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(age(1000, 0), "-");
        assert_eq!(age(1000, 990), "10s ago");
    }

    #[test]
    fn utc_dates_are_right() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_714_566_600), "2024-05-01 12:30:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
