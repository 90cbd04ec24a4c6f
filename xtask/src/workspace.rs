//! Where the workspace root and its target dir are, and the `cargo` to call on them.
//! Both paths come from `cargo metadata`, so `CARGO_TARGET_DIR` and `build.target-dir` are honoured.
//! It parses only the two string fields it needs, so xtask needs no JSON crate.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process;

/// The cargo workspace xtask belongs to.
pub struct Workspace {
    /// The directory holding the workspace's `Cargo.toml`.
    pub root: PathBuf,
    /// Cargo's target dir, absolute; profiles (`debug`, `release`) are inside it.
    pub target_dir: PathBuf,
}

impl Workspace {
    /// Asks `cargo metadata` where the workspace and its target dir are.
    ///
    /// # Errors
    ///
    /// Fails when cargo cannot run or its answer lacks either path.
    pub fn locate() -> Result<Workspace> {
        // `cargo run` sets CARGO_MANIFEST_DIR at run time; the compile-time
        // value is the fallback for running target/debug/xtask by hand.
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let mut command = Command::new(cargo_program());
        command
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(manifest_dir.join("Cargo.toml"));
        let metadata = process::stdout(&mut command).context("could not locate the workspace")?;
        let Some(root) = json_string_field(&metadata, "workspace_root") else {
            bail!("`cargo metadata` printed no workspace_root");
        };
        let Some(target_dir) = json_string_field(&metadata, "target_directory") else {
            bail!("`cargo metadata` printed no target_directory");
        };
        Ok(Workspace {
            root: PathBuf::from(root),
            target_dir: PathBuf::from(target_dir),
        })
    }

    /// A `cargo` command that runs in the workspace root, whatever the caller's current dir.
    pub fn cargo(&self) -> Command {
        let mut command = Command::new(cargo_program());
        command.current_dir(&self.root);
        command
    }
}

/// The cargo that started us, so nested calls use the same toolchain even
/// when a `rust-toolchain.toml` or `+toolchain` picked a non-default one.
fn cargo_program() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// The string value of the first `"key": "..."` in `json`, unescaped.
/// Good enough for cargo's top-level path fields; not a JSON parser.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let quoted_key = format!("\"{key}\"");
    let (_, after_key) = json.split_once(&quoted_key)?;
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = after_colon.strip_prefix('"')?.chars();
    let mut value = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                // `\\`, `\"` and `\/` stand for the character itself.
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_field_reads_plain_and_escaped_paths() {
        let json = r#"{"packages":[],"target_directory":"/work/main/target","workspace_root":"C:\\work\\\"main\""}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/work/main/target")
        );
        assert_eq!(
            json_string_field(json, "workspace_root").as_deref(),
            Some(r#"C:\work\"main""#)
        );
    }

    #[test]
    fn json_string_field_tolerates_spaces_and_rejects_non_strings() {
        assert_eq!(
            json_string_field(r#"{ "a" : "b\u00e9" }"#, "a").as_deref(),
            Some("bé")
        );
        assert_eq!(json_string_field(r#"{"a":1}"#, "a"), None);
        assert_eq!(json_string_field(r#"{"a":"unterminated"#, "a"), None);
        assert_eq!(json_string_field(r#"{"b":"x"}"#, "a"), None);
    }
}
