//! `cargo xtask proof [--full]`: the reliability proof (tests/tests/reliability.rs) against
//! the debug binaries, one test at a time so that their figures do not disturb each other,
//! each figure printed on a `proof:` line. `--full` runs the full counts.

use std::ffi::OsString;

use anyhow::{Result, bail};

use crate::process;
use crate::workspace::Workspace;

/// Builds the `blanket` binary, then runs the proof suite with small counts (what CI runs)
/// or, with `--full`, the full ones (`BLANKET_PROOF_FULL=1`).
///
/// # Errors
///
/// Fails on an unknown argument, a failed build or a failed proof.
pub fn proof(args: &[OsString]) -> Result<()> {
    let full = match args {
        [] => false,
        [flag] if flag == "--full" => true,
        other => bail!("`cargo xtask proof` takes only --full, got {other:?}"),
    };
    let workspace = Workspace::locate()?;
    let mut build = workspace.cargo();
    build.args(["build", "-p", "blanket-cli", "--bins"]);
    process::run(&mut build)?;
    let mut suite = workspace.cargo();
    suite
        .args([
            "test",
            "-p",
            "blanket-blackbox",
            "--test",
            "reliability",
            "--",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env("BLANKET_TEST_BIN_DIR", workspace.target_dir.join("debug"));
    if full {
        suite.env("BLANKET_PROOF_FULL", "1");
    } else {
        suite.env_remove("BLANKET_PROOF_FULL");
    }
    eprintln!(
        "xtask: running the reliability proof with {} counts",
        if full { "full" } else { "CI" }
    );
    process::run(&mut suite)
}
