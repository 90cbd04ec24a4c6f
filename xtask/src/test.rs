//! `cargo xtask test`: every check CI runs, in CI's order, stopping at the first failure.
//! Cheap checks run first so a formatting slip fails in seconds, not after a full build.
//! It installs what the checks need but never edits source files (fmt runs with `--check`).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::apt::{self, Purpose};
use crate::process;
use crate::toolchain;
use crate::workspace::Workspace;

/// The crate every other crate points at; it must stay free of front-end crates.
const CORE_PACKAGE: &str = "blanket-core";

/// Crates (and their `-`/`_` family, e.g. `tower-http`, `clap_builder`) that
/// `blanket-core` must not depend on: it knows no HTTP, Tauri or CLI parsing.
const FORBIDDEN_IN_CORE: &[&str] = &["axum", "tower", "tauri", "clap", "reqwest"];

/// Installs what the checks need, then runs fmt, clippy, the dependency-direction
/// check, the build and the test suites, printing a banner per step and a summary.
///
/// # Errors
///
/// Fails at the first step that fails, naming it; later steps are skipped.
pub fn test() -> Result<()> {
    apt::ensure(&[
        Purpose::Build,
        Purpose::Tests,
        Purpose::Desktop,
        Purpose::DesktopTests,
    ])?;
    let workspace = Workspace::locate()?;
    ensure_tauri_driver(&workspace)?;
    toolchain::ensure_components(&workspace)?;
    let mut steps = steps(&workspace);
    let count = steps.len();
    let started = Instant::now();
    let mut outcomes: Vec<(&'static str, Outcome)> = Vec::new();
    let mut failure = None;
    for (index, step) in steps.iter_mut().enumerate() {
        if failure.is_some() {
            outcomes.push((step.name, Outcome::Skipped));
            continue;
        }
        eprintln!(
            "\n==> [{}/{count}] {}: {}",
            index + 1,
            step.name,
            process::display(&step.command)
        );
        let step_started = Instant::now();
        let result = step.run();
        let elapsed = step_started.elapsed();
        match result {
            Ok(()) => {
                eprintln!("<== {} passed in {}", step.name, format_duration(elapsed));
                outcomes.push((step.name, Outcome::Passed(elapsed)));
            }
            Err(error) => {
                eprintln!(
                    "<== {} FAILED after {}",
                    step.name,
                    format_duration(elapsed)
                );
                outcomes.push((step.name, Outcome::Failed(elapsed)));
                failure = Some((index + 1, step.name, error));
            }
        }
    }
    print_summary(&outcomes, started.elapsed());
    match failure {
        Some((number, name, error)) => Err(error.context(format!(
            "`cargo xtask test` failed at step {number}/{count}: {name}"
        ))),
        None => Ok(()),
    }
}

/// One check: a command, and how to judge it.
struct Step {
    name: &'static str,
    command: Command,
    verdict: Verdict,
}

/// How a step's result is judged.
enum Verdict {
    /// Success is the command's exit status; its output goes straight to the terminal.
    ExitStatus,
    /// The command prints `blanket-core`'s dependency tree, which must not
    /// contain any of `FORBIDDEN_IN_CORE`.
    CoreDependencies,
    /// The command prints the `blanket` binary's dependency tree, which must not contain
    /// GTK, WebKit or Tauri: the headless server builds on machines without them.
    HeadlessDependencies,
}

/// What happened to a step, for the summary.
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped,
}

impl Step {
    fn new(name: &'static str, command: Command, verdict: Verdict) -> Step {
        Step {
            name,
            command,
            verdict,
        }
    }

    fn run(&mut self) -> Result<()> {
        match self.verdict {
            Verdict::ExitStatus => process::run(&mut self.command),
            Verdict::CoreDependencies => {
                let tree = process::stdout(&mut self.command)?;
                check_core_dependencies(&tree)
            }
            Verdict::HeadlessDependencies => {
                let tree = process::stdout(&mut self.command)?;
                check_headless_dependencies(&tree)
            }
        }
    }
}

fn steps(workspace: &Workspace) -> Vec<Step> {
    let cargo = |args: &[&str]| {
        let mut command = workspace.cargo();
        command.args(args);
        command
    };
    let mut steps = vec![
        Step::new(
            "fmt",
            cargo(&["fmt", "--all", "--", "--check"]),
            Verdict::ExitStatus,
        ),
        Step::new(
            "clippy",
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            Verdict::ExitStatus,
        ),
        Step::new(
            "dependency direction",
            cargo(&[
                "tree",
                "-p",
                CORE_PACKAGE,
                "-e",
                "normal",
                "--prefix",
                "none",
            ]),
            Verdict::CoreDependencies,
        ),
        Step::new(
            "headless without GTK",
            cargo(&[
                "tree",
                "-p",
                "blanket-cli",
                "-e",
                "normal",
                "--prefix",
                "none",
            ]),
            Verdict::HeadlessDependencies,
        ),
        // The black-box suites start these binaries from the target dir
        // rather than through `cargo run`, so they must exist first.
        Step::new(
            "build binaries",
            cargo(&["build", "--workspace", "--bins"]),
            Verdict::ExitStatus,
        ),
    ];
    let bin_dir = workspace.target_dir.join("debug");
    let mut suites = if process::succeeds(&mut cargo(&["nextest", "--version"])) {
        let mut suites = vec![Step::new(
            "test suites",
            cargo(&["nextest", "run", "--workspace", "--no-fail-fast"]),
            Verdict::ExitStatus,
        )];
        // nextest does not run doctests, so they get their own step.
        suites.push(Step::new(
            "doctests",
            cargo(&["test", "--workspace", "--doc", "--no-fail-fast"]),
            Verdict::ExitStatus,
        ));
        suites
    } else {
        eprintln!("xtask: cargo-nextest is not installed; running the suites with cargo test");
        vec![Step::new(
            "test suites",
            cargo(&["test", "--workspace", "--no-fail-fast"]),
            Verdict::ExitStatus,
        )]
    };
    for suite in &mut suites {
        suite.command.env("BLANKET_TEST_BIN_DIR", &bin_dir);
    }
    steps.append(&mut suites);
    steps.append(&mut browser_steps(workspace, &bin_dir));
    steps.push(desktop_step(workspace, &bin_dir));
    steps
}

/// The real desktop window (tests/desktop): Xvfb, a D-Bus session and dunst around the built
/// `blanket-desktop`, driven through tauri-driver; screenshots land in target/desktop-tests.
fn desktop_step(workspace: &Workspace, bin_dir: &std::path::Path) -> Step {
    let mut run = desktop_script(workspace, "journeys.py", bin_dir);
    run.arg("--artifacts")
        .arg(workspace.target_dir.join("desktop-tests"));
    Step::new("desktop window", run, Verdict::ExitStatus)
}

/// `python3 tests/desktop/SCRIPT --bin-dir BIN_DIR`: a script of the desktop suite on the
/// binaries in `bin_dir`, with Debian's python, which has the suite's packages.
pub fn desktop_script(workspace: &Workspace, script: &str, bin_dir: &std::path::Path) -> Command {
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(workspace.root.join("tests").join("desktop").join(script))
        .arg("--bin-dir")
        .arg(bin_dir);
    command
}

/// Installs tauri-driver (the WebDriver bridge to the app's window) from crates.io if missing.
pub fn ensure_tauri_driver(workspace: &Workspace) -> Result<()> {
    if process::on_path("tauri-driver") {
        return Ok(());
    }
    eprintln!("xtask: installing tauri-driver for the desktop window tests");
    let mut install = workspace.cargo();
    install.args(["install", "tauri-driver", "--locked"]);
    process::run(&mut install)
}

/// The web UI in a real browser (tests/browser): install the pinned playwright-core from
/// the lock file, then node's own test runner against the binaries just built.
fn browser_steps(workspace: &Workspace, bin_dir: &std::path::Path) -> Vec<Step> {
    let folder = workspace.root.join("tests").join("browser");
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&folder);
    let mut run = Command::new("node");
    // One file at a time: each starts its own server, workers and browser.
    run.args(["--test", "--test-concurrency=1"])
        .current_dir(&folder)
        .env("BLANKET_TEST_BIN_DIR", bin_dir);
    vec![
        Step::new("browser suite: npm ci", install, Verdict::ExitStatus),
        Step::new("browser suite", run, Verdict::ExitStatus),
    ]
}

/// Checks `cargo tree --prefix none` output, one `name vX.Y.Z ...` per line.
fn check_core_dependencies(tree: &str) -> Result<()> {
    let mut offenders: Vec<(&str, &str)> = Vec::new();
    for line in tree.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(version)) = (fields.next(), fields.next()) else {
            continue;
        };
        let version = version.trim_start_matches('v');
        if is_forbidden_in_core(name) && !offenders.contains(&(name, version)) {
            offenders.push((name, version));
        }
    }
    let Some(&(first_name, first_version)) = offenders.first() else {
        return Ok(());
    };
    let listed = offenders
        .iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect::<Vec<_>>()
        .join(", ");
    bail!(
        "{CORE_PACKAGE} depends on {listed}; core must not know HTTP, Tauri or CLI parsing \
         (STYLE.md 2.1: dependencies point at core, never out of it). See what pulls it in: \
         cargo tree -p {CORE_PACKAGE} -e normal -i {first_name}@{first_version}"
    )
}

/// Crate families of the desktop stack that the headless `blanket` binary must not pull in.
const DESKTOP_ONLY: &[&str] = &[
    "gtk",
    "gdk",
    "webkit2gtk",
    "javascriptcore-rs",
    "soup3",
    "tauri",
    "wry",
    "tao",
];

/// Checks the `blanket` binary's tree for desktop crates (`gtk`, `webkit2gtk`, `tauri`, ...).
fn check_headless_dependencies(tree: &str) -> Result<()> {
    let mut offenders: Vec<&str> = Vec::new();
    for name in tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let desktop = DESKTOP_ONLY.iter().any(|family| {
            name.strip_prefix(family)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_']))
        });
        if desktop && !offenders.contains(&name) {
            offenders.push(name);
        }
    }
    let Some(first) = offenders.first() else {
        return Ok(());
    };
    bail!(
        "the headless blanket binary depends on {}: it must build without GTK/WebKit; see what \
         pulls it in: cargo tree -p blanket-cli -e normal -i {first}",
        offenders.join(", ")
    )
}

fn is_forbidden_in_core(name: &str) -> bool {
    FORBIDDEN_IN_CORE.iter().any(|forbidden| {
        name.strip_prefix(forbidden)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_']))
    })
}

fn print_summary(outcomes: &[(&'static str, Outcome)], total: Duration) {
    eprintln!("\n==> summary");
    let width = outcomes
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, outcome) in outcomes {
        let (label, elapsed) = match outcome {
            Outcome::Passed(elapsed) => ("ok", format_duration(*elapsed)),
            Outcome::Failed(elapsed) => ("FAILED", format_duration(*elapsed)),
            Outcome::Skipped => ("skipped", String::new()),
        };
        let line = format!("    {label:<8} {name:<width$}  {elapsed:>8}");
        eprintln!("{}", line.trim_end());
    }
    eprintln!("    total {}", format_duration(total));
}

fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_tree_without_front_end_crates_passes() {
        let tree = "blanket-core v0.1.0 (/work/main/crates/core)\n\
                    tokio v1.47.1\n\
                    towel v1.0.0\n\
                    tokio v1.47.1 (*)\n";
        check_core_dependencies(tree).expect("no forbidden crate in this tree");
    }

    #[test]
    fn core_tree_with_a_front_end_crate_names_it() {
        let tree = "blanket-core v0.1.0 (/work/main/crates/core)\n\
                    axum v0.8.4\n\
                    axum-core v0.5.2\n\
                    tower-http v0.6.6\n\
                    axum v0.8.4 (*)\n";
        let message = check_core_dependencies(tree)
            .expect_err("axum is forbidden in core")
            .to_string();
        assert!(
            message.contains("depends on axum 0.8.4, axum-core 0.5.2, tower-http 0.6.6;"),
            "{message}"
        );
        assert!(message.contains("-i axum@0.8.4"), "{message}");
    }

    #[test]
    fn the_headless_tree_refuses_desktop_crates() {
        check_headless_dependencies("blanket-cli v0.1.0\naxum v0.8.4\ntaog v1.0.0\n")
            .expect("no desktop crate in this tree");
        let message =
            check_headless_dependencies("blanket-cli v0.1.0\ngtk-sys v0.18.0\ntauri v2.11.6\n")
                .expect_err("gtk is a desktop crate")
                .to_string();
        assert!(message.contains("depends on gtk-sys, tauri:"), "{message}");
    }

    #[test]
    fn forbidden_names_match_whole_crate_families_only() {
        assert!(is_forbidden_in_core("clap"));
        assert!(is_forbidden_in_core("clap_builder"));
        assert!(is_forbidden_in_core("tauri-utils"));
        assert!(!is_forbidden_in_core("towel"));
        assert!(!is_forbidden_in_core("clapme"));
    }

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
