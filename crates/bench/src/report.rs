//! Figures and how they are shown: one line each on the terminal, and the Markdown report
//! (docs/benchmarks.md) with the machine, a results table and how each figure was measured.
//! It only formats; every number comes from the measurement modules.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Measured;
use crate::compare::{BlanketSide, Side};
use crate::stats::{grouped, millis};
use crate::system::Machine;

/// Whether a figure met its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The goal was met.
    Pass,
    /// The goal was missed.
    Miss,
    /// Context with no goal of its own.
    Info,
}

impl Verdict {
    /// `Pass` when `met`, else `Miss`.
    pub fn of(met: bool) -> Verdict {
        if met { Verdict::Pass } else { Verdict::Miss }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Info => "info",
        }
    }
}

/// One measured figure with its goal.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What was measured, e.g. "Durable submits, empty store".
    pub name: String,
    /// The headline number with its unit.
    pub result: String,
    /// Median latency, where the figure has latencies.
    pub p50: Option<Duration>,
    /// 99th-percentile latency, where the figure has latencies.
    pub p99: Option<Duration>,
    /// The goal in words, e.g. ">= 5,000/s"; empty for `Info`.
    pub goal: String,
    /// Whether the goal was met.
    pub verdict: Verdict,
    /// CPU other programs used while it was measured, in percent of one core, where known.
    pub others_cpu: Option<f64>,
    /// How it was measured, and the numbers behind it, as Markdown sentences.
    pub method: String,
}

/// What the report says about the run itself.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// UTC time the run started, e.g. `2026-11-25 12:50 UTC`.
    pub date: String,
    /// `full` or `quick`.
    pub mode: &'static str,
    /// How long all measurements took.
    pub duration: Duration,
    /// The open-files limit both processes ran with.
    pub open_files_limit: u64,
}

/// Other programs using more than this much of one core make a figure unreliable.
pub const BUSY_OTHERS_PERCENT: f64 = 20.0;

/// One terminal line per figure, and a warning when other programs were busy.
pub fn terminal_lines(figures: &[Figure]) -> String {
    let mut out = String::new();
    for figure in figures {
        let latencies = latency_text(figure);
        let goal = if figure.goal.is_empty() {
            String::new()
        } else {
            format!("; goal {}", figure.goal)
        };
        let _ = writeln!(
            out,
            "{:<4}  {}: {}{latencies}{goal}",
            figure.verdict.label(),
            figure.name,
            figure.result
        );
    }
    if let Some(warning) = busy_warning(figures) {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The whole Markdown report.
pub fn markdown(machine: &Machine, run: &RunInfo, measured: &Measured) -> String {
    let figures = &measured.figures;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `cargo xtask bench` ({} mode) on {}; rerun it rather than editing this file.",
        run.mode, run.date
    );
    let _ = writeln!(
        out,
        "It builds the release binaries; the `blanket-bench` binary (crates/bench) starts each \
         `blanket serve` it measures on a temporary data dir (HOME and XDG dirs temporary too) and \
         measures it over loopback from the same machine. The web UI's and the desktop app's \
         figures come from `tests/browser/bench.mjs` and `tests/desktop/figures.py`, which \
         `cargo xtask bench` runs first; their goals are judged here like the others. Each latency \
         figure gives the median (p50) and p99 of its many samples.\n"
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| CPU | {} |", machine.cpu_model);
    let _ = writeln!(out, "| Cores | {} |", machine.cores);
    let _ = writeln!(
        out,
        "| RAM | {:.1} GiB |",
        machine.memory_kib as f64 / 1024.0 / 1024.0
    );
    let _ = writeln!(out, "| Kernel | Linux {} |", machine.kernel);
    let _ = writeln!(out, "| rustc | {} |", machine.rustc);
    let _ = writeln!(out, "| Blanket | {} |", machine.commit);
    let _ = writeln!(out, "| Open-files limit | {} |", run.open_files_limit);
    let _ = writeln!(
        out,
        "| Measuring took | {:.0} s |\n",
        run.duration.as_secs_f64()
    );

    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(out, "| Figure | Result | p50 | p99 | Goal | Verdict |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for figure in figures {
        let p50 = figure.p50.map(millis).unwrap_or_default();
        let p99 = figure.p99.map(millis).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {p50} | {p99} | {} | {} |",
            figure.name,
            figure.result,
            figure.goal,
            figure.verdict.label()
        );
    }
    let misses = figures
        .iter()
        .filter(|figure| figure.verdict == Verdict::Miss)
        .count();
    let goals = figures
        .iter()
        .filter(|figure| figure.verdict != Verdict::Info)
        .count();
    let _ = writeln!(
        out,
        "\n{} of {goals} goals met.\n",
        goals.saturating_sub(misses)
    );
    if let Some(warning) = busy_warning(figures) {
        let _ = writeln!(out, "**Warning:** {warning}\n");
    }
    if !measured.not_measured.is_empty() {
        let _ = writeln!(out, "Not measured in this run:\n");
        for note in &measured.not_measured {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## How each figure was measured\n");
    for figure in figures {
        let _ = writeln!(out, "### {}\n\n{}\n", figure.name, figure.method);
    }

    out.push_str(&measured.comparison);
    out
}

/// The side-by-side with pueue: each side's CLI submit rate at each queue size, Blanket's HTTP
/// rate, submit -> running and memory.
pub fn comparison_section(blanket: &BlanketSide, pueue: Option<&Side>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Side by side with pueue\n");
    let _ = writeln!(
        out,
        "Both driven through their CLI, one client process per task, one after another, as a \
         shell loop would: `blanket submit -q -t echo_task` against `blanket serve --workers 0`, \
         and `pueue add -- true` against `pueued` on a paused queue of its own (a temporary \
         folder, config and Unix socket), both on the same machine in the same run. On the \
         empty queue the two are timed in alternating blocks (the median of each side's \
         blocks), so a moment when the shared machine is slow falls on both; one run of each \
         after the other saw pueue anywhere from 234 to 348 adds/s. pueue's queue is filled \
         by writing copies of one queued task into its saved state and restarting the daemon, since adding 100,000 through its CLI would take hours; Blanket's \
         store is filled over HTTP. Blanket's HTTP rate (2 keep-alive connections, no client \
         process) is a different client and is shown apart; the empty-store HTTP figure is the \
         first row of the results above. The issue quotes pueue at 340 submits/s on an empty \
         queue and 111/s on average while its queue grows to 2,000 tasks.\n"
    );
    let _ = writeln!(
        out,
        "| Queued tasks | `blanket submit` | `pueue add` | Blanket / pueue | Blanket HTTP |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (index, level) in blanket.side.levels.iter().enumerate() {
        let pueue_level = pueue.and_then(|side| side.levels.get(index));
        let pueue_rate = pueue_level.map_or_else(
            || "not measured".to_owned(),
            |level| {
                format!(
                    "{:.0}/s ({} queued, {} adds)",
                    level.cli_rate,
                    grouped(level.queued),
                    level.cli_submits
                )
            },
        );
        let ratio = pueue_level
            .map(|pueue| format!("{:.2}x", level.cli_rate / pueue.cli_rate))
            .unwrap_or_default();
        let http = match blanket.http.get(index) {
            Some(Some(run)) => format!(
                "{}/s (from {} stored, p99 {})",
                grouped(run.rate() as u64),
                grouped(run.stored_before),
                millis(run.latencies.p99())
            ),
            _ => "the first result above".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0}/s ({} stored, {} submits) | {pueue_rate} | {ratio} | {http} |",
            grouped(crate::compare::QUEUE_LEVELS[index]),
            level.cli_rate,
            grouped(level.queued),
            level.cli_submits,
        );
    }
    let start = |side: &Side| {
        let latencies = &side.submit_to_running;
        format!(
            "p50 {}, p99 {} ({} tasks)",
            millis(latencies.p50()),
            millis(latencies.p99()),
            latencies.len()
        )
    };
    let memory = |side: &Side| {
        format!(
            "{:.1} MiB RSS, {:.1} MiB PSS",
            side.memory_kib.0 as f64 / 1024.0,
            side.memory_kib.1 as f64 / 1024.0
        )
    };
    let missing = || "not measured".to_owned();
    let _ = writeln!(out, "\n| | Blanket | pueue |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| Submit (CLI) -> the task's process running, idle queue | {} | {} |",
        start(&blanket.side),
        pueue.map_or_else(missing, start)
    );
    let _ = writeln!(
        out,
        "| Daemon memory with {} tasks queued | {} | {} |",
        grouped(crate::compare::QUEUE_LEVELS[crate::compare::QUEUE_LEVELS.len() - 1]),
        memory(&blanket.side),
        pueue.map_or_else(missing, memory)
    );
    let _ = writeln!(
        out,
        "\nSubmit -> running: each task runs `date +%s%N` first; the time runs from the wall \
         clock just before the client process is started to the one the task wrote. Blanket \
         runs it with one idle local worker (`--workers 1`), pueue with its default group \
         running. Memory: VmRSS and the PSS of /proc/PID/smaps_rollup of the daemon process \
         alone (Blanket's local workers are separate processes and not counted; the server \
         measured here has none)."
    );
    out
}

/// A sentence naming the figures measured while other programs were busy, if any.
fn busy_warning(figures: &[Figure]) -> Option<String> {
    let busy: Vec<String> = figures
        .iter()
        .filter_map(|figure| {
            let others = figure.others_cpu?;
            (others > BUSY_OTHERS_PERCENT).then(|| format!("{} ({others:.0}%)", figure.name))
        })
        .collect();
    if busy.is_empty() {
        return None;
    }
    Some(format!(
        "other programs used more than {BUSY_OTHERS_PERCENT:.0}% of a core while these were \
         measured, so they understate Blanket: {}. Rerun on a quiet machine.",
        busy.join("; ")
    ))
}

fn latency_text(figure: &Figure) -> String {
    match (figure.p50, figure.p99) {
        (Some(p50), Some(p99)) => format!(" (p50 {}, p99 {})", millis(p50), millis(p99)),
        (Some(p50), None) => format!(" (p50 {})", millis(p50)),
        (None, Some(p99)) => format!(" (p99 {})", millis(p99)),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(verdict: Verdict) -> Figure {
        Figure {
            name: "Durable submits, empty store".to_owned(),
            result: "6,000/s".to_owned(),
            p50: Some(Duration::from_micros(300)),
            p99: Some(Duration::from_micros(900)),
            goal: ">= 5,000/s".to_owned(),
            verdict,
            others_cpu: Some(1.0),
            method: "Two connections.".to_owned(),
        }
    }

    #[test]
    fn terminal_line_shows_verdict_result_latencies_and_goal() {
        assert_eq!(
            terminal_lines(&[figure(Verdict::Pass)]),
            "PASS  Durable submits, empty store: 6,000/s (p50 0.30 ms, p99 0.90 ms); goal >= 5,000/s\n"
        );
    }

    #[test]
    fn busy_machines_are_named_in_a_warning() {
        let mut busy = figure(Verdict::Miss);
        busy.others_cpu = Some(80.0);
        let lines = terminal_lines(&[figure(Verdict::Pass), busy]);
        assert!(
            lines.ends_with(
                "warning: other programs used more than 20% of a core while these were measured, \
                 so they understate Blanket: Durable submits, empty store (80%). Rerun on a quiet machine.\n"
            ),
            "{lines}"
        );
    }

    #[test]
    fn markdown_counts_goals_met_without_info_rows() {
        let machine = Machine {
            cpu_model: "CPU".to_owned(),
            cores: 2,
            memory_kib: 1024 * 1024,
            kernel: "6.1".to_owned(),
            rustc: "rustc 1.88.0".to_owned(),
            commit: "abc1234".to_owned(),
        };
        let run = RunInfo {
            date: "2026-01-01 00:00 UTC".to_owned(),
            mode: "full",
            duration: Duration::from_secs(100),
            open_files_limit: 4096,
        };
        let mut info = figure(Verdict::Info);
        info.goal = String::new();
        let measured = Measured {
            figures: vec![figure(Verdict::Pass), figure(Verdict::Miss), info],
            comparison: String::new(),
            not_measured: vec!["The desktop figures: no display.".to_owned()],
        };
        let text = markdown(&machine, &run, &measured);
        assert!(
            text.contains("- The desktop figures: no display."),
            "{text}"
        );
        assert!(text.contains("1 of 2 goals met."), "{text}");
        assert!(!text.contains("Warning"), "{text}");
        assert!(text.contains(
            "| Durable submits, empty store | 6,000/s | 0.30 ms | 0.90 ms | >= 5,000/s | PASS |"
        ));
    }

    fn side(rates: [f64; 3]) -> Side {
        Side {
            levels: crate::compare::QUEUE_LEVELS
                .iter()
                .zip(rates)
                .map(|(&queued, cli_rate)| crate::compare::LevelRate {
                    queued,
                    cli_rate,
                    cli_submits: 30,
                })
                .collect(),
            submit_to_running: crate::stats::Latencies::new(vec![Duration::from_millis(4)]),
            memory_kib: (20 * 1024, 12 * 1024),
        }
    }

    #[test]
    fn the_comparison_gives_ratios_only_where_pueue_was_measured() {
        let blanket = BlanketSide {
            side: side([200.0, 200.0, 200.0]),
            http: Vec::new(),
        };
        let without = comparison_section(&blanket, None);
        assert!(
            without.contains("| 2,000 | 200/s (2,000 stored, 30 submits) | not measured |  |"),
            "{without}"
        );
        let pueue = side([100.0, 50.0, 2.0]);
        let with = comparison_section(&blanket, Some(&pueue));
        assert!(
            with.contains("| 100/s (0 queued, 30 adds) | 2.00x |"),
            "{with}"
        );
        assert!(with.contains("| 100.00x |"), "{with}");
        assert!(
            with.contains("| 20.0 MiB RSS, 12.0 MiB PSS | 20.0 MiB RSS, 12.0 MiB PSS |"),
            "{with}"
        );
    }
}
