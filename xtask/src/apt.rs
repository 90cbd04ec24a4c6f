//! Installs the Debian/Ubuntu packages a command needs, listed per purpose, when any are missing.
//! Separate so adding a package is a one-line change to `Purpose::packages`.
//! It never removes or upgrades anything, and off Debian it only says what is needed.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::process;

/// Why a set of system packages is needed; each command asks for the purposes it serves.
#[derive(Clone, Copy)]
pub enum Purpose {
    /// Compiling the workspace: a C toolchain for bundled SQLite, pkg-config for system libraries.
    Build,
    /// Running the test suites, on top of what `Build` needs.
    Tests,
}

impl Purpose {
    /// The Debian package names this purpose needs.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Purpose::Build => &["build-essential", "pkg-config"],
            // The browser suites add chromium, nodejs and npm here when they
            // land; the desktop shell brings a purpose of its own for GTK/WebKit.
            Purpose::Tests => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::Build => "build",
            Purpose::Tests => "tests",
        }
    }
}

/// Installs whichever packages of `purposes` are missing, with `apt-get`
/// (through `sudo` when not root). Without `apt-get` it prints the list and
/// returns, so other systems can still try with what they have.
///
/// # Errors
///
/// Fails when `dpkg-query` cannot be run, when packages are missing and we
/// are neither root nor have `sudo`, or when `apt-get` fails.
pub fn ensure(purposes: &[Purpose]) -> Result<()> {
    let wanted = wanted_packages(purposes);
    if wanted.is_empty() {
        return Ok(());
    }
    let purpose_names = purposes
        .iter()
        .map(|purpose| purpose.name())
        .collect::<Vec<_>>()
        .join(", ");
    if !process::on_path("apt-get") || !process::on_path("dpkg-query") {
        eprintln!(
            "xtask: no apt-get here, so not installing anything; make sure the \
             equivalents of these Debian packages are installed ({purpose_names}): {}",
            wanted.join(" ")
        );
        return Ok(());
    }

    let mut missing = Vec::new();
    for package in wanted {
        if !is_installed(package)? {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }

    let elevate = !is_root();
    if elevate && !process::on_path("sudo") {
        bail!(
            "missing system packages: {list}; there is no sudo, so run this as root: \
             apt-get update && apt-get install -y --no-install-recommends {list}",
            list = missing.join(" ")
        );
    }
    eprintln!(
        "xtask: installing system packages ({purpose_names}): {}",
        missing.join(" ")
    );
    process::run(&mut apt_get(elevate, &["update"]))
        .context("could not update the apt package lists")?;
    let mut install = apt_get(
        elevate,
        &[
            "install",
            "-y",
            "--no-install-recommends",
            // A fresh machine often runs unattended-upgrades at boot; wait
            // for its dpkg lock rather than failing at once.
            "-o",
            "DPkg::Lock::Timeout=300",
        ],
    );
    install.args(&missing);
    process::run(&mut install).with_context(|| format!("could not install {}", missing.join(" ")))
}

/// The packages of all `purposes`, each once, in list order.
fn wanted_packages(purposes: &[Purpose]) -> Vec<&'static str> {
    let mut wanted: Vec<&'static str> = Vec::new();
    for package in purposes.iter().flat_map(|purpose| purpose.packages()) {
        if !wanted.contains(package) {
            wanted.push(package);
        }
    }
    wanted
}

fn is_installed(package: &str) -> Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("could not run dpkg-query to check for {package}"))?;
    // dpkg-query exits non-zero for a package it has never heard of.
    Ok(output.status.success() && status_means_installed(&String::from_utf8_lossy(&output.stdout)))
}

/// `${Status}` is "want flag state"; only the state says whether the files
/// are there ("hold ok installed" is installed too, "deinstall ok
/// config-files" is not).
fn status_means_installed(status: &str) -> bool {
    status.split_whitespace().nth(2) == Some("installed")
}

/// Whether we run as root, asked of `id -u` so xtask needs no libc binding.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

fn apt_get(elevate: bool, args: &[&str]) -> Command {
    let mut command = if elevate {
        // sudo resets the environment, so the variable goes through `env`.
        let mut command = Command::new("sudo");
        command.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        command
    } else {
        let mut command = Command::new("apt-get");
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    // CI has no stdin; sudo asks for a password on the terminal, not on stdin.
    command.args(args).stdin(Stdio::null());
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_means_installed_reads_the_state_field() {
        assert!(status_means_installed("install ok installed"));
        assert!(status_means_installed("hold ok installed"));
        assert!(!status_means_installed("deinstall ok config-files"));
        assert!(!status_means_installed("unknown ok not-installed"));
        assert!(!status_means_installed(""));
    }

    #[test]
    fn wanted_packages_lists_each_package_once_in_order() {
        assert_eq!(
            wanted_packages(&[Purpose::Build, Purpose::Tests, Purpose::Build]),
            ["build-essential", "pkg-config"]
        );
    }
}
