//! Makes sure the Rust toolchain has the `rustfmt` and `clippy` components the checks call.
//! Rustup's minimal profile leaves them out; without rustup we can only say what is missing.

use anyhow::{Context, Result, bail};

use crate::process;
use crate::workspace::Workspace;

/// Adds `rustfmt` and `clippy` with rustup when `cargo fmt` or `cargo clippy` is missing.
///
/// # Errors
///
/// Fails when a component is missing and rustup is absent or cannot add it.
pub fn ensure_components(workspace: &Workspace) -> Result<()> {
    let missing: Vec<&str> = [("rustfmt", "fmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(_, subcommand)| {
            !process::succeeds(workspace.cargo().args([subcommand, "--version"]))
        })
        .map(|(component, _)| component)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !process::on_path("rustup") {
        bail!(
            "the Rust toolchain lacks {}; install them the way this toolchain was installed",
            missing.join(" and ")
        );
    }
    eprintln!("xtask: adding toolchain components: {}", missing.join(" "));
    // Run in the workspace root so a rust-toolchain file there picks the toolchain.
    let mut command = std::process::Command::new("rustup");
    command
        .args(["component", "add"])
        .args(&missing)
        .current_dir(&workspace.root);
    process::run(&mut command).context("could not add the toolchain components the checks need")
}
