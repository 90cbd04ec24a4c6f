//! `cargo xtask deb`: the desktop app's Debian package, built with the `dist` profile (the
//! release profile with fat LTO, one codegen unit and size optimisation) by the Tauri CLI,
//! which builds and bundles in one go because its separate bundle step knows only `release`.
//! The package holds `blanket-desktop` and, beside it in `/usr/bin`, the
//! headless `blanket` (the app's local workers run `blanket worker`, which maps neither GTK nor
//! WebKit; users get the CLI on their PATH), a desktop entry and the icons of `icons/`.
//!
//! The bundler comes from npm (`@tauri-apps/cli`, whose package ships the binary), pinned here.
//! It runs in `src-tauri/`, where it finds the Rust package and, through the link
//! `src-tauri/tauri.conf.json`, the root config; what only packaging needs (the icons' and the
//! headless binary's absolute paths) goes in its `--config` instead, so a plain `cargo build`
//! never looks for them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Purpose};
use crate::process;
use crate::workspace::Workspace;

/// The Tauri CLI that bundles, the same minor version as the `tauri` crate in Cargo.lock.
const TAURI_CLI: &str = "@tauri-apps/cli@2.12.5";

/// The headless `blanket`: the binary the desktop app's local workers run, and the CLI the
/// package puts on the user's PATH.
pub const HEADLESS_BUILD: [&str; 5] = ["build", "-p", "blanket-cli", "--bin", "blanket"];

/// Added to `HEADLESS_BUILD`: `blanket-desktop` with the `prod` feature, as `cargo xtask run`
/// opens it (the package's is built by the Tauri CLI, with the same feature).
pub const DESKTOP_BUILD: [&str; 6] = [
    "-p",
    "blanket-desktop",
    "--features",
    "prod",
    "--bin",
    "blanket-desktop",
];

/// The Cargo profile the package is built with, and so the folder under the target dir that
/// holds its binaries and `bundle/deb`.
pub const PACKAGE_PROFILE: &str = "dist";

/// Builds the binaries as they ship and the .deb; prints and returns the package's path.
///
/// # Errors
/// Fails when packages cannot be installed, a build fails, or the bundler makes no .deb.
pub fn deb() -> Result<PathBuf> {
    apt::ensure(&[Purpose::Build, Purpose::Desktop, Purpose::Packaging])?;
    let workspace = Workspace::locate()?;
    process::run(
        workspace
            .cargo()
            .args(HEADLESS_BUILD)
            .args(["--profile", PACKAGE_PROFILE]),
    )
    .context("could not build the headless blanket to package")?;
    let built = workspace.target_dir.join(PACKAGE_PROFILE);
    let bundle_dir = built.join("bundle").join("deb");
    // A package left by an earlier run must never pass for this one's.
    if bundle_dir.exists() {
        std::fs::remove_dir_all(&bundle_dir)
            .with_context(|| format!("could not empty {}", bundle_dir.display()))?;
    }
    let headless = stage_headless(&built)?;
    let config = bundler_config(&icons(&workspace.root)?, &headless);
    // `tauri build` builds the app itself (its bundle step alone would look for it only
    // in `release`), then bundles it with the headless binary staged above.
    let mut bundle = Command::new("npm");
    bundle
        .args(["exec", "--yes", "--package", TAURI_CLI, "--", "tauri"])
        .args([
            "build",
            "--ci",
            "--bundles",
            "deb",
            "--features",
            "prod",
            "--config",
        ])
        .arg(&config)
        .args(["--", "--profile", PACKAGE_PROFILE])
        .current_dir(workspace.root.join("src-tauri"));
    process::run(&mut bundle).context("the Tauri bundler failed")?;
    let package = only_deb(&bundle_dir)?;
    let size = std::fs::metadata(&package)
        .with_context(|| format!("could not read {}", package.display()))?
        .len();
    eprintln!(
        "xtask: built {} ({:.1} MiB); install it with `sudo apt install {}`",
        package.display(),
        mebibytes(size),
        package.display()
    );
    Ok(package)
}

/// Copies the headless binary to where the bundler looks for an external binary (its path
/// plus `-TARGET_TRIPLE`) and returns that path without the suffix, as the config names it.
fn stage_headless(built: &Path) -> Result<PathBuf> {
    let triple = host_triple()?;
    let staged = built.join("deb-external-bin");
    std::fs::create_dir_all(&staged)
        .with_context(|| format!("could not create {}", staged.display()))?;
    let exe = std::env::consts::EXE_SUFFIX;
    let source = built.join(format!("blanket{exe}"));
    let target = staged.join(format!("blanket-{triple}{exe}"));
    std::fs::copy(&source, &target).with_context(|| {
        format!(
            "could not copy {} to {}",
            source.display(),
            target.display()
        )
    })?;
    Ok(staged.join("blanket"))
}

/// The triple rustc builds for here, e.g. `x86_64-unknown-linux-gnu`.
fn host_triple() -> Result<String> {
    let version = process::stdout(Command::new("rustc").arg("-vV"))?;
    match version.lines().find_map(|line| line.strip_prefix("host: ")) {
        Some(triple) => Ok(triple.trim().to_owned()),
        None => bail!("`rustc -vV` printed no host triple"),
    }
}

/// Every PNG in `icons/`: the bundler installs each in the hicolor folder of its pixel size.
fn icons(root: &Path) -> Result<Vec<PathBuf>> {
    let folder = root.join("icons");
    let icons = files_ending(&folder, "png")?;
    if icons.is_empty() {
        bail!("no PNG icons in {}", folder.display());
    }
    for icon in &icons {
        refuse_high_density_name(icon)?;
    }
    Ok(icons)
}

/// The bundler puts an icon named `*@2x.png` in `WxH@2`, W and H its pixel size: the folder
/// of an icon twice as large (a 256 px `128x128@2x.png` would land in `256x256@2`). One such
/// icon belongs in `icons/` as `WxH.png` instead.
fn refuse_high_density_name(icon: &Path) -> Result<()> {
    let name = icon.file_name().unwrap_or_default().to_string_lossy();
    if name.contains("@2x") {
        bail!(
            "{}: the bundler would install it as an icon of twice its size; name it after \
             its pixel size instead (256x256.png for a 256 px icon)",
            icon.display()
        );
    }
    Ok(())
}

/// The bundler's `--config` JSON: the icons and the external binary, by absolute path.
fn bundler_config(icons: &[PathBuf], headless: &Path) -> String {
    let icons = icons
        .iter()
        .map(|icon| json_string(&icon.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"bundle":{{"icon":[{icons}],"externalBin":[{}]}}}}"#,
        json_string(&headless.to_string_lossy())
    )
}

fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            control if u32::from(control) < 0x20 => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// The one .deb in `folder`.
fn only_deb(folder: &Path) -> Result<PathBuf> {
    match files_ending(folder, "deb")?.as_slice() {
        [package] => Ok(package.clone()),
        [] => bail!("the bundler made no .deb in {}", folder.display()),
        _ => bail!(
            "the bundler made several .deb files in {}",
            folder.display()
        ),
    }
}

/// The files in `folder` with the extension `extension`, sorted.
fn files_ending(folder: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(folder).with_context(|| format!("could not list {}", folder.display()))?
    {
        let path = entry
            .with_context(|| format!("could not list {}", folder.display()))?
            .path();
        if path.extension().is_some_and(|found| found == extension) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn mebibytes(bytes: u64) -> f64 {
    // Exact enough: a package is far below 2^52 bytes.
    bytes as f64 / f64::from(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icons_folder_is_packaged_without_high_density_names() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let icons = icons(&root).unwrap();
        assert!(icons.iter().any(|icon| icon.ends_with("icons/256x256.png")));
    }

    #[test]
    fn an_icon_named_at_2x_is_refused_with_the_name_to_use() {
        let error = refuse_high_density_name(Path::new("/r/icons/128x128@2x.png"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("128x128@2x.png"), "{error}");
        assert!(error.contains("256x256.png"), "{error}");
    }

    #[test]
    fn the_bundler_config_names_icons_and_the_headless_binary_as_json() {
        let config = bundler_config(
            &[
                PathBuf::from("/r/icons/32x32.png"),
                PathBuf::from("/r/icons/a\"b.png"),
            ],
            Path::new("/r/target/dist/deb-external-bin/blanket"),
        );
        assert_eq!(
            config,
            r#"{"bundle":{"icon":["/r/icons/32x32.png","/r/icons/a\"b.png"],"externalBin":["/r/target/dist/deb-external-bin/blanket"]}}"#
        );
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_string("tab\there"), r#""tab\u0009here""#);
    }
}
