//! `cargo xtask bench [--quick] [--with-pueue]`: every benchmark of the project in one run.
//! Builds the release binaries, runs the web UI's script (tests/browser/bench.mjs) and the
//! desktop app's (tests/desktop/figures.py, under its own Xvfb and D-Bus session), then
//! `blanket-bench`, which measures the coordinator, the workers, the CLI and pueue beside
//! Blanket, reads those scripts' JSON reports and writes docs/benchmarks.md with every figure.
//! A quick run only smoke-tests all this, so its report goes under the target dir instead.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Purpose};
use crate::process;
use crate::test::{desktop_script, ensure_tauri_driver};
use crate::workspace::Workspace;

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    quick: bool,
    with_pueue: bool,
}

fn parse(args: &[OsString]) -> Result<Options> {
    let mut options = Options::default();
    for arg in args {
        match arg.to_str() {
            Some("--quick") => options.quick = true,
            Some("--with-pueue") => options.with_pueue = true,
            _ => bail!(
                "`cargo xtask bench` takes only --quick and --with-pueue, got {arg:?} \
                 (see docs/benchmarks.md)"
            ),
        }
    }
    Ok(options)
}

/// Runs the benchmarks; `args` may hold `--quick` and `--with-pueue`.
///
/// # Errors
/// Fails on an unknown argument, when packages cannot be installed, the build fails, or the
/// bench fails (a missed goal is reported, not an error; a script that fails is reported as
/// not measured).
pub fn bench(args: &[OsString]) -> Result<()> {
    let options = parse(args)?;
    let mut purposes = vec![Purpose::Build, Purpose::Tests];
    if !options.quick {
        purposes.extend([Purpose::Desktop, Purpose::DesktopTests]);
    }
    apt::ensure(&purposes)?;
    let workspace = Workspace::locate()?;
    if options.with_pueue && !(process::on_path("pueue") && process::on_path("pueued")) {
        eprintln!("xtask: installing pueue to measure it beside Blanket");
        process::run(workspace.cargo().args(["install", "pueue", "--locked"]))
            .context("could not install pueue")?;
    }
    let build_args = [
        "build",
        "--release",
        "--bin",
        "blanket",
        "--bin",
        "blanket-bench",
    ];
    process::run(workspace.cargo().args(build_args))
        .context("could not build the blanket and blanket-bench binaries")?;

    let release = workspace.target_dir.join("release");
    let bench_dir = workspace.target_dir.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("could not create {}", bench_dir.display()))?;
    let report = if options.quick {
        bench_dir.join("benchmarks-quick.md")
    } else {
        workspace.root.join("docs").join("benchmarks.md")
    };
    let exe = std::env::consts::EXE_SUFFIX;
    let mut command = Command::new(release.join(format!("blanket-bench{exe}")));
    command
        .arg("--blanket")
        .arg(release.join(format!("blanket{exe}")))
        .arg("--out")
        .arg(&report)
        // git and rustc describe the build for the report, so they run in the workspace.
        .current_dir(&workspace.root);
    if options.quick {
        command.arg("--quick");
    }
    if options.with_pueue {
        command.arg("--with-pueue");
    }

    match ui_report(&workspace, &release, options.quick) {
        Ok(path) => command.arg("--ui-report").arg(path),
        Err(why) => command.arg("--not-measured").arg(why),
    };
    let desktop = if options.quick {
        Err("The desktop figures: a quick run skips them.".to_owned())
    } else {
        desktop_report(&workspace, &bench_dir)
    };
    match desktop {
        Ok(path) => command.arg("--desktop-report").arg(path),
        Err(why) => command.arg("--not-measured").arg(why),
    };

    eprintln!("xtask: running {}", process::display(&command));
    process::run(&mut command).context("the benchmark failed")
}

/// Runs tests/browser/bench.mjs on the release build; its JSON report, or why there is none.
fn ui_report(workspace: &Workspace, release: &Path, quick: bool) -> Result<PathBuf, String> {
    let folder = workspace.root.join("tests").join("browser");
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&folder);
    process::run(&mut install)
        .map_err(|error| format!("The web UI figures: `npm ci` failed ({error:#})."))?;
    // A stale report from an earlier run must never pass for this run's.
    let path = workspace.target_dir.join("ui-bench").join("report.json");
    let _ = std::fs::remove_file(&path);
    let mut run = Command::new("node");
    run.arg("bench.mjs")
        .current_dir(&folder)
        .env("BLANKET_TEST_BIN_DIR", release);
    if quick {
        run.args(["--tasks", "5000", "--changes", "20", "--renders", "20"]);
    }
    eprintln!("xtask: running {}", process::display(&run));
    // The script exits non-zero when a figure misses its goal; the report still counts.
    let _ = process::run(&mut run);
    if path.is_file() {
        Ok(path)
    } else {
        Err(
            "The web UI figures: tests/browser/bench.mjs wrote no report; its output is in the terminal of that run."
                .to_owned(),
        )
    }
}

/// Runs tests/desktop/figures.py on `blanket-desktop` as the .deb ships it; its JSON report,
/// or why there is none. The script starts its own Xvfb and D-Bus session, so no display is
/// needed.
fn desktop_report(workspace: &Workspace, bench_dir: &Path) -> Result<PathBuf, String> {
    // Building the .deb is the build of both binaries as shipped (the `dist` profile, and
    // `prod`, which serves the app's assets through Tauri's protocol, docs/desktop.md), so
    // its size comes for free.
    let package = crate::deb::deb().map_err(|error| {
        format!("The desktop figures: the release build or the .deb failed ({error:#}).")
    })?;
    ensure_tauri_driver(workspace).map_err(|error| {
        format!("The desktop figures: tauri-driver could not be installed ({error:#}).")
    })?;
    let path = bench_dir.join("desktop.json");
    let _ = std::fs::remove_file(&path);
    let built = workspace.target_dir.join(crate::deb::PACKAGE_PROFILE);
    let mut run = desktop_script(workspace, "figures.py", &built);
    run.arg("--deb").arg(&package).arg("--out").arg(&path);
    eprintln!("xtask: running {}", process::display(&run));
    match process::run(&mut run) {
        Ok(()) if path.is_file() => Ok(path),
        Ok(()) => Err(format!(
            "The desktop figures: tests/desktop/figures.py wrote no {}.",
            path.display()
        )),
        Err(error) => Err(format!(
            "The desktop figures: tests/desktop/figures.py failed ({error:#}); its output is in the terminal of that run."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_and_anything_else_is_refused() {
        let options = parse(&["--with-pueue".into(), "--quick".into()]).expect("known flags");
        assert_eq!(
            options,
            Options {
                quick: true,
                with_pueue: true
            }
        );
        let error = parse(&["--pueue".into()]).expect_err("unknown flag");
        assert!(error.to_string().contains("--with-pueue"), "{error}");
    }
}
