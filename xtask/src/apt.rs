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
    /// Building the desktop shell (src-tauri): GTK, WebKitGTK, the tray's appindicator.
    /// `clippy --workspace` builds it too, so every check needs these.
    Desktop,
    /// Driving the real desktop window in tests: a virtual display, a D-Bus session, a
    /// notification daemon, WebKit's WebDriver, selenium, and chromium beside it.
    DesktopTests,
    /// Making the desktop app's .deb: npm runs the Tauri CLI, whose npm package ships the
    /// bundler.
    Packaging,
}

impl Purpose {
    /// The Debian package names this purpose needs.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Purpose::Build => &["build-essential", "pkg-config"],
            // The browser suites (tests/browser): Debian's chromium, driven by playwright-core
            // under node; `npm ci` installs playwright-core (it downloads no browser).
            // e2fsprogs: `chattr`, with which the reliability suite makes the data dir
            // unwritable even for root.
            Purpose::Tests => &["chromium", "nodejs", "npm", "e2fsprogs"],
            Purpose::Desktop => &[
                "libwebkit2gtk-4.1-dev",
                "libgtk-3-dev",
                "libayatana-appindicator3-dev",
                "librsvg2-dev",
                "libxdo-dev",
            ],
            Purpose::DesktopTests => &[
                "xvfb",
                "xauth",
                "dbus-x11",
                "dunst",
                "webkit2gtk-driver",
                "xdotool",
                "imagemagick",
                "python3-selenium",
                "chromium",
                "chromium-driver",
                "curl",
            ],
            Purpose::Packaging => &["nodejs", "npm"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::Build => "build",
            Purpose::Tests => "tests",
            Purpose::Desktop => "desktop",
            Purpose::DesktopTests => "desktop tests",
            Purpose::Packaging => "packaging",
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
    let installed =
        output.status.success() && status_means_installed(&String::from_utf8_lossy(&output.stdout));
    Ok(installed || is_provided(package)?)
}

/// Whether an installed package provides `package`: NodeSource's `nodejs` provides (and
/// conflicts with) Debian's `npm`, so asking apt for `npm` there would fail.
fn is_provided(package: &str) -> Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Provides}\n"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("could not run dpkg-query to list what installed packages provide")?;
    Ok(provides(&String::from_utf8_lossy(&output.stdout), package))
}

/// Whether a line of `${Status}\t${Provides}` output, of an installed package, lists
/// `package` (as `name` or `name (= version)`).
fn provides(listing: &str, package: &str) -> bool {
    listing.lines().any(|line| {
        let (status, provided) = line.split_once('\t').unwrap_or((line, ""));
        status_means_installed(status)
            && provided
                .split(',')
                .filter_map(|item| item.split_whitespace().next())
                .any(|name| name == package)
    })
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
            [
                "build-essential",
                "pkg-config",
                "chromium",
                "nodejs",
                "npm",
                "e2fsprogs"
            ]
        );
    }

    #[test]
    fn a_package_provided_by_an_installed_one_counts_as_there() {
        let listing = "install ok installed\tnodejs-dev, nodejs-legacy, npm\n\
                       deinstall ok config-files\tchromium-browser\n\
                       install ok installed\tnode-types-node (= 18.18.14)\n";
        assert!(provides(listing, "npm"));
        assert!(provides(listing, "node-types-node"));
        assert!(
            !provides(listing, "chromium-browser"),
            "not installed any more"
        );
        assert!(!provides(listing, "np"));
    }
}
