//! Running child commands so that a failure names the exact command line and its exit status.
//! Separate so `run`, `test`, `apt` and `toolchain` report failures in the same words.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `command` with inherited stdout and stderr and waits for it.
///
/// # Errors
///
/// Fails when the command cannot be started or exits unsuccessfully; the
/// message quotes the command line.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(command));
    }
    Ok(())
}

/// Runs `command`, capturing stdout while stderr still reaches the terminal,
/// and returns stdout as text.
///
/// # Errors
///
/// Fails when the command cannot be started, exits unsuccessfully, or prints
/// something that is not UTF-8.
pub fn stdout(command: &mut Command) -> Result<String> {
    let Output { status, stdout, .. } = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(command));
    }
    String::from_utf8(stdout)
        .with_context(|| format!("`{}` printed something that is not UTF-8", display(command)))
}

/// Whether `command` runs and exits successfully, with all its output discarded.
/// For probes such as `cargo nextest --version`, where failing to start is an answer.
pub fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether an executable called `program` is in a directory on `$PATH`.
pub fn on_path(program: &str) -> bool {
    let file_name = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|directory| directory.join(&file_name).is_file())
    })
}

/// The command line as a user would type it, for banners and error messages.
pub fn display(command: &Command) -> String {
    let program = display_program(command.get_program());
    command
        .get_args()
        .map(OsStr::to_string_lossy)
        .fold(program, |line, arg| format!("{line} {arg}"))
}

/// `$CARGO` is an absolute path into the toolchain; users know it as `cargo`.
fn display_program(program: &OsStr) -> String {
    let path = Path::new(program);
    match path.file_stem() {
        Some(stem) if stem == "cargo" => "cargo".to_owned(),
        _ => path.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_cargo_by_name_and_args_unquoted() {
        let mut command = Command::new("/home/me/.rustup/toolchains/stable/bin/cargo");
        command.args(["fmt", "--all", "--", "--check"]);
        assert_eq!(display(&command), "cargo fmt --all -- --check");
    }

    #[test]
    fn display_keeps_other_programs_as_given() {
        let mut command = Command::new("target/release/blanket");
        command.arg("serve");
        assert_eq!(display(&command), "target/release/blanket serve");
    }
}
