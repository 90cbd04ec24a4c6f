//! `cargo xtask run`: installs missing system packages, builds the release binary and starts the app:
//! the desktop window when there is a display, the headless server otherwise.
//! It replaces itself with the app (exec on Unix), so Ctrl-C, signals and the exit code are the app's.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result};

use crate::apt::{self, Purpose};
use crate::deb::{DESKTOP_BUILD, HEADLESS_BUILD};
use crate::process;
use crate::workspace::Workspace;

/// Starts the front end that suits this session, passing `app_args` on to it.
///
/// # Errors
///
/// Fails when packages cannot be installed, the build fails, or the app cannot be started.
/// On Unix it does not return on success.
pub fn run(app_args: &[OsString]) -> Result<()> {
    let front_end = front_end();
    apt::ensure(front_end.purposes())?;
    let workspace = Workspace::locate()?;
    let mut command = match front_end {
        FrontEnd::Headless => {
            process::run(workspace.cargo().args(HEADLESS_BUILD).arg("--release"))
                .context("could not build the blanket binary")?;
            let binary = workspace
                .target_dir
                .join("release")
                .join(format!("blanket{}", std::env::consts::EXE_SUFFIX));
            let mut command = Command::new(binary);
            command.arg("serve").args(app_args);
            command
        }
        FrontEnd::Desktop => {
            let mut build = workspace.cargo();
            build
                .args(HEADLESS_BUILD)
                .args(DESKTOP_BUILD)
                .arg("--release");
            process::run(&mut build)
                .context("could not build the blanket-desktop and blanket binaries")?;
            let binary = workspace
                .target_dir
                .join("release")
                .join(format!("blanket-desktop{}", std::env::consts::EXE_SUFFIX));
            // The desktop app takes its settings from BLANKET_* variables and the config
            // file, not from flags.
            if !app_args.is_empty() {
                eprintln!(
                    "xtask: the desktop app takes no arguments (set BLANKET_PORT, \
                     BLANKET_DATA_DIR, ...); ignoring them"
                );
            }
            Command::new(binary)
        }
    };
    eprintln!("xtask: starting {}", process::display(&command));
    exec(&mut command)
}

/// The front ends `cargo xtask run` can start.
enum FrontEnd {
    /// `blanket serve`: the server and its web UI, for a browser.
    Headless,
    /// `blanket-desktop`: the same server with its window, tray and notifications.
    Desktop,
}

impl FrontEnd {
    fn purposes(&self) -> &'static [Purpose] {
        match self {
            FrontEnd::Headless => &[Purpose::Build],
            FrontEnd::Desktop => &[Purpose::Build, Purpose::Desktop],
        }
    }
}

/// The desktop window when a display is there to show it, the headless server otherwise.
fn front_end() -> FrontEnd {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if has_display {
        FrontEnd::Desktop
    } else {
        FrontEnd::Headless
    }
}

#[cfg(unix)]
fn exec(command: &mut Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    // `exec` only returns when it failed.
    let error = command.exec();
    Err(error).with_context(|| format!("could not start `{}`", process::display(command)))
}

#[cfg(not(unix))]
fn exec(command: &mut Command) -> Result<()> {
    // No exec here: wait for the app and hand its exit code on.
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", process::display(command)))?;
    std::process::exit(status.code().unwrap_or(1))
}
