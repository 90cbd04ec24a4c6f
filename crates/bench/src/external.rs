//! Figures measured by the project's other benchmark scripts, which need a browser or a
//! display: the web UI's (`tests/browser/bench.mjs`) and the desktop app's
//! (`tests/desktop/figures.py`). `cargo xtask bench` runs them and hands their JSON reports
//! here, where each figure is judged against its issue's goal like every other one.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::report::{Figure, Verdict};
use crate::stats::{grouped, millis};

const RENDER_P50_GOAL: Duration = Duration::from_millis(50);
const LOG_TAIL_GOAL: Duration = Duration::from_secs(1);
const PAGE_CHANGE_P99_GOAL: Duration = Duration::from_millis(200);
const COLD_START_GOAL: Duration = Duration::from_millis(700);
const DESKTOP_PSS_RATIO_GOAL: f64 = 1.1;
const WINDOW_CHANGE_P99_GOAL: Duration = Duration::from_millis(100);

/// The web UI's figures from the JSON `tests/browser/bench.mjs` writes.
///
/// # Errors
/// When the file cannot be read or lacks a figure.
pub fn ui_figures(path: &Path) -> Result<Vec<Figure>> {
    let report = read_json(path)?;
    let source = "Measured by `tests/browser/bench.mjs` (Playwright driving Debian's chromium, \
                  headless) against its own release `blanket serve`";
    let stored = report["storedTasks"].as_u64().unwrap_or_default();
    let render = &report["render"]["tasks page (/ui/)"];
    let filtered = &report["render"]["tasks page, filtered by state and type"];
    let tail = &report["bigLog"]["openToTailVisible"];
    let following = &report["following"]["roundTrip"];
    let change = &report["changeVisible"];
    let render_p50 = ms(render, "p50")?;
    let tail_p50 = ms(tail, "p50")?;
    let change_p99 = ms(change, "p99")?;
    Ok(vec![
        Figure {
            name: format!("UI: tasks page render, {} stored tasks", grouped(stored)),
            result: format!("p50 {}", millis(render_p50)),
            p50: Some(render_p50),
            p99: Some(ms(render, "p99")?),
            goal: format!("p50 <= {}", millis(RENDER_P50_GOAL)),
            verdict: Verdict::of(render_p50 <= RENDER_P50_GOAL),
            others_cpu: None,
            method: format!(
                "{source}: `GET /ui/` timed from request to the body's last byte, {} times \
                 after 10 unmeasured ones. The same page filtered by state and type took p50 {}, \
                 p99 {}.",
                render["count"],
                millis(ms(filtered, "p50")?),
                millis(ms(filtered, "p99")?),
            ),
        },
        Figure {
            name: "UI: 50 MB log, page open to tail visible".to_owned(),
            result: format!("p50 {}", millis(tail_p50)),
            p50: Some(tail_p50),
            p99: Some(ms(tail, "max")?),
            goal: format!("< {}", millis(LOG_TAIL_GOAL)),
            verdict: Verdict::of(ms(tail, "max")? < LOG_TAIL_GOAL),
            others_cpu: None,
            method: format!(
                "{source}: a task wrote a 50 MB log; the task page was opened {} times, each \
                 timed until the log's last line showed scrolled into view. The p99 column is \
                 the slowest of them, which the verdict judges. While the page followed a log \
                 growing by about 300,000 lines, a round trip into the page took p50 {}, p99 {}.",
                tail["count"],
                millis(ms(following, "p50")?),
                millis(ms(following, "p99")?),
            ),
        },
        Figure {
            name: "UI: change -> visible in an open page".to_owned(),
            result: format!("p99 {}", millis(change_p99)),
            p50: Some(ms(change, "p50")?),
            p99: Some(change_p99),
            goal: format!("p99 <= {}", millis(PAGE_CHANGE_P99_GOAL)),
            verdict: Verdict::of(change_p99 <= PAGE_CHANGE_P99_GOAL),
            others_cpu: None,
            method: format!(
                "{source}: {} submits, 60 ms apart, each timed from just before the submit to \
                 the new row appearing in the open tasks page (a MutationObserver stamps it), \
                 with {} tasks stored.",
                change["count"],
                grouped(stored),
            ),
        },
    ])
}

/// The desktop app's figures from the JSON `tests/desktop/figures.py` writes.
///
/// # Errors
/// When the file cannot be read or lacks a figure.
pub fn desktop_figures(path: &Path) -> Result<Vec<Figure>> {
    let report = read_json(path)?;
    let source = "Measured by `tests/desktop/figures.py` on the release `blanket-desktop` under \
                  Xvfb with a D-Bus session";
    let direct = &report["cold_start_direct_ms"];
    let direct_median = ms(direct, "median")?;
    let change = &report["change_visible_ms"];
    let change_p99 = ms(change, "p99")?;
    let idle = &report["idle"];
    let pss = number(idle, "pss_mib")?;
    let mut figures = vec![
        Figure {
            name: "Desktop: cold start to the tasks page on the screen".to_owned(),
            result: format!("median {}", millis(direct_median)),
            p50: Some(direct_median),
            p99: Some(ms(direct, "max")?),
            goal: format!("<= {}", millis(COLD_START_GOAL)),
            verdict: Verdict::of(direct_median <= COLD_START_GOAL),
            others_cpu: None,
            method: format!(
                "{source}: the app started as a user's launcher starts it, on a fresh data dir \
                 each time, timed from just before its exec to the first frame the X server \
                 shows with the page drawn in the window (its top-left corner read every 5 ms); \
                 the p99 column is the slowest start. Samples: {}. To the app's \"page loaded\" \
                 log line: median {}.{}",
                direct["samples"],
                millis(ms(&direct["page_loaded"], "median")?),
                hello_start(&report["cold_start_direct_hello_world_ms"]),
            ),
        },
        Figure {
            name: "Desktop: change -> visible in the window".to_owned(),
            result: format!("p99 {}", millis(change_p99)),
            p50: Some(ms(change, "p50")?),
            p99: Some(change_p99),
            goal: format!("p99 <= {}", millis(WINDOW_CHANGE_P99_GOAL)),
            verdict: Verdict::of(change_p99 <= WINDOW_CHANGE_P99_GOAL),
            others_cpu: None,
            method: format!(
                "{source}: {} submits over HTTP, each timed from just before it to the row \
                 showing in the window.",
                change["samples"]
            ),
        },
    ];
    let processes = idle["processes"]
        .as_array()
        .map(|processes| {
            processes
                .iter()
                .map(|process| format!("{} {} MiB", process["name"], process["pss_mib"]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let idle_method = format!(
        "{source}: the app idle for 15 s, then PSS summed over it and every process under it \
         (WebKit's processes, the local workers): {processes}. RSS summed: {} MiB. Wake-ups \
         while idle: {} a second.",
        idle["rss_mib"], idle["wakeups_per_second"]
    );
    match report["idle_hello_world"]["pss_mib"].as_f64() {
        Some(hello) => {
            let ratio = pss / hello;
            figures.push(Figure {
                name: "Desktop: idle memory (PSS) against a bare Tauri window".to_owned(),
                result: format!("{ratio:.2}x ({pss:.1} MiB against {hello:.1} MiB)"),
                p50: None,
                p99: None,
                goal: format!("<= {DESKTOP_PSS_RATIO_GOAL}x"),
                verdict: Verdict::of(ratio <= DESKTOP_PSS_RATIO_GOAL),
                others_cpu: None,
                method: idle_method,
            });
        }
        None => figures.push(Figure {
            name: "Desktop: idle memory (PSS)".to_owned(),
            result: format!("{pss:.1} MiB"),
            p50: None,
            p99: None,
            goal: String::new(),
            verdict: Verdict::Info,
            others_cpu: None,
            method: format!(
                "{idle_method} No bare Tauri window was measured in this run, so the goal \
                 (<= {DESKTOP_PSS_RATIO_GOAL}x one) is not judged."
            ),
        }),
    }
    if let (Some(ratio), Some(once)) = (
        report["resident_once_ratio"].as_f64(),
        idle["resident_once_mib"].as_f64(),
    ) {
        figures.push(Figure {
            name: "Desktop: idle memory, each page counted once, against a bare Tauri window"
                .to_owned(),
            result: format!("{ratio:.2}x ({once:.1} MiB)"),
            p50: None,
            p99: None,
            goal: String::new(),
            verdict: Verdict::Info,
            others_cpu: None,
            method: format!(
                "{source}: the same idle processes, with every physical page they map counted \
                 once (from /proc/PID/pagemap) instead of shared out by PSS. Not judged: PSS is \
                 the goal's measure, but it moves with whatever other WebKit processes share \
                 the libraries, which this figure does not."
            ),
        });
    }
    let cold = &report["cold_start_ms"];
    if cold.is_object() {
        let median = ms(cold, "median")?;
        figures.push(Figure {
            name: "Desktop: cold start to the tasks page, launched by WebDriver".to_owned(),
            result: format!("median {}", millis(median)),
            p50: Some(median),
            p99: Some(ms(cold, "max")?),
            goal: String::new(),
            verdict: Verdict::Info,
            others_cpu: None,
            method: format!(
                "{source}: started by tauri-driver and WebKitWebDriver, as the window tests \
                 start it, from the app's exec to the tasks page's load event (the page's own \
                 navigation timing); the p99 column is the slowest start. Samples: {}. Not \
                 judged: the automation session adds its own start-up.",
                cold["samples"]
            ),
        });
    }
    let deb = report["deb_mib"]
        .as_f64()
        .map(|size| format!(", .deb {size:.1} MiB"))
        .unwrap_or_default();
    figures.push(Figure {
        name: "Desktop: sizes".to_owned(),
        result: format!("binary {:.1} MiB{deb}", number(&report, "binary_mib")?),
        p50: None,
        p99: None,
        goal: String::new(),
        verdict: Verdict::Info,
        others_cpu: None,
        method: format!("{source}: the size of the release binary and, when built, the .deb."),
    });
    Ok(figures)
}

/// The bare Tauri window's start, when it was measured, for the cold start's method text.
fn hello_start(hello: &Value) -> String {
    match hello["median"].as_f64() {
        Some(median) => format!(
            " The bare Tauri window, started the same way: median {}, samples {}.",
            millis(Duration::from_secs_f64(median / 1000.0)),
            hello["samples"]
        ),
        None => String::new(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value[key]
        .as_f64()
        .with_context(|| format!("the report has no number {key:?} in {value}"))
}

/// A field holding milliseconds, as a duration.
fn ms(value: &Value, key: &str) -> Result<Duration> {
    Ok(Duration::from_secs_f64(
        number(value, key)?.max(0.0) / 1000.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ui_report_gives_three_judged_figures() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("report.json");
        let summary = |p50: f64, p99: f64| serde_json::json!({"count": 5, "p50": p50, "p95": p99, "p99": p99, "max": p99});
        let report = serde_json::json!({
            "storedTasks": 100_000,
            "render": {
                "tasks page (/ui/)": summary(2.0, 4.0),
                "tasks page, filtered by state and type": summary(40.0, 60.0),
            },
            "bigLog": {"openToTailVisible": summary(150.0, 1_200.0)},
            "following": {"roundTrip": summary(1.0, 2.0)},
            "changeVisible": summary(50.0, 150.0),
        });
        std::fs::write(&path, report.to_string()).expect("written");
        let figures = ui_figures(&path).expect("parsed");
        let verdicts: Vec<Verdict> = figures.iter().map(|figure| figure.verdict).collect();
        assert_eq!(verdicts, [Verdict::Pass, Verdict::Miss, Verdict::Pass]);
        assert_eq!(
            figures[0].name,
            "UI: tasks page render, 100,000 stored tasks"
        );
    }

    #[test]
    fn a_report_missing_a_figure_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("desktop.json");
        std::fs::write(&path, r#"{"binary_mib": 27.4}"#).expect("written");
        let error = desktop_figures(&path).expect_err("no cold start");
        assert!(format!("{error:#}").contains("median"), "{error:#}");
    }
}
