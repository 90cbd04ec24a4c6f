//! Tidy checks over the whole repository, so review does not have to make them: every `.rs`
//! file opens with a `//!` header, no test hides behind `should_panic` or `ignore`, no `dbg!`
//! is left behind, and `core` depends on no HTTP, IPC or CLI crate.

use std::path::{Path, PathBuf};

/// The top-level folders holding Rust sources; missing ones are skipped.
const SOURCE_ROOTS: [&str; 4] = ["crates", "xtask", "tests", "src-tauri"];
/// Folders never walked: build output and JavaScript packages.
const SKIPPED_DIRS: [&str; 2] = ["target", "node_modules"];
/// Crates `core` must not depend on (a crate named `<name>-...` counts too).
const FORBIDDEN_IN_CORE: [&str; 5] = ["axum", "tower", "tauri", "clap", "reqwest"];

#[test]
fn every_rust_file_opens_with_a_module_header() {
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, text)| !text.lines().next().unwrap_or("").starts_with("//!"))
        .map(|(path, _)| {
            format!(
                "{}: the first line is not a `//!` module header",
                path.display()
            )
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "add a 1-4 line `//!` header (what the module is for, why it is separate, what it \
         does not do), see STYLE.md 2.3:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_test_is_marked_should_panic_or_ignore() {
    // Built from pieces so this file does not trip its own check.
    let attributes = [concat!("#[", "should_panic"), concat!("#[", "ignore")];
    let offenders = lines_containing(&attributes);
    assert!(
        offenders.is_empty(),
        "assert on the `Err` instead of should_panic, and fix or delete an ignored test \
         (STYLE.md 2.8):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_dbg_macro_is_left_behind() {
    let offenders = lines_containing(&[concat!("dbg", "!(")]);
    assert!(
        offenders.is_empty(),
        "remove the debugging output, or use tracing (STYLE.md 2.9):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn core_depends_on_no_http_ipc_or_cli_crate() {
    let manifest_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let mut tables: Vec<&toml::Table> = dependency_tables(&manifest);
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for target in targets.values().filter_map(toml::Value::as_table) {
            tables.extend(dependency_tables(target));
        }
    }
    let offenders: Vec<String> = tables
        .into_iter()
        .flat_map(|table| table.iter())
        .flat_map(|(name, spec)| {
            let package = spec
                .get("package")
                .and_then(toml::Value::as_str)
                .map(str::to_string);
            [Some(name.clone()), package].into_iter().flatten()
        })
        .filter(|name| {
            FORBIDDEN_IN_CORE
                .iter()
                .any(|forbidden| name == forbidden || name.starts_with(&format!("{forbidden}-")))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "crates/core/Cargo.toml depends on {offenders:?}: core knows no HTTP, IPC or command \
         line (STYLE.md 2.1); put that code in server, src-tauri or cli"
    );
}

#[test]
fn the_walk_finds_the_crates_and_this_file() {
    let files = rust_files();
    let this_file = Path::new("crates")
        .join("core")
        .join("tests")
        .join("tidy.rs");
    assert!(files.iter().any(|(path, _)| path == &this_file));
    assert!(files.len() > 20, "only {} .rs files found", files.len());
    assert!(
        files
            .iter()
            .all(|(path, _)| !path.components().any(|part| part.as_os_str() == "target"))
    );
}

/// The repository's root: two folders up from this crate.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/core sits two folders below the repository root")
        .to_path_buf()
}

/// Every `.rs` file under the source roots, as (path relative to the root, text), sorted.
fn rust_files() -> Vec<(PathBuf, String)> {
    let root = repository_root();
    let mut pending: Vec<PathBuf> = SOURCE_ROOTS
        .iter()
        .map(|name| root.join(name))
        .filter(|path| path.is_dir())
        .collect();
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        let listing = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
        for entry in listing {
            let entry = entry.unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry
                .file_type()
                .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
            if file_type.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if file_type.is_file() && name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                let relative = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
                files.push((relative, text));
            }
        }
    }
    files.sort();
    files
}

/// `path:line: text` of every line of every file that contains one of `needles`.
fn lines_containing(needles: &[&str]) -> Vec<String> {
    rust_files()
        .iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| needles.iter().any(|needle| line.contains(needle)))
                .map(move |(index, line)| {
                    format!("{}:{}: {}", path.display(), index + 1, line.trim())
                })
        })
        .collect()
}

fn dependency_tables(table: &toml::Table) -> Vec<&toml::Table> {
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .into_iter()
        .filter_map(|key| table.get(key).and_then(toml::Value::as_table))
        .collect()
}
