//! `cargo xtask bench [--quick]`: builds `blanket` and `blanket-bench` in release mode and runs
//! the bench, which starts the server itself and writes docs/benchmarks.md.
//! A quick run only smoke-tests the bench, so its report goes under the target dir instead.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Purpose};
use crate::process;
use crate::workspace::Workspace;

/// Runs the benchmarks; `args` may hold `--quick`.
///
/// # Errors
///
/// Fails on an unknown argument, when packages cannot be installed, the build fails, or the
/// bench fails (a missed goal is reported, not an error).
pub fn bench(args: &[OsString]) -> Result<()> {
    let mut quick = false;
    for arg in args {
        match arg.to_str() {
            Some("--quick") => quick = true,
            _ => bail!(
                "`cargo xtask bench` takes only --quick, got {arg:?} (see docs/benchmarks.md)"
            ),
        }
    }
    // The bench's client is Rust (hyper), so building is all it needs from the system.
    apt::ensure(&[Purpose::Build])?;
    let workspace = Workspace::locate()?;
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
    let exe = std::env::consts::EXE_SUFFIX;
    let report = if quick {
        workspace
            .target_dir
            .join("bench")
            .join("benchmarks-quick.md")
    } else {
        workspace.root.join("docs").join("benchmarks.md")
    };
    if let Some(dir) = report.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let mut command = Command::new(release.join(format!("blanket-bench{exe}")));
    command
        .arg("--blanket")
        .arg(release.join(format!("blanket{exe}")))
        .arg("--out")
        .arg(&report)
        // git and rustc describe the build for the report, so they run in the workspace.
        .current_dir(&workspace.root);
    if quick {
        command.arg("--quick");
    }
    eprintln!("xtask: running {}", process::display(&command));
    process::run(&mut command).context("the benchmark failed")
}
