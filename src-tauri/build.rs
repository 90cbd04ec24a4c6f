//! Reads `tauri.conf.json` (the repository root's, through the `src-tauri/tauri.conf.json`
//! link, because tauri-build only looks in the package folder) and the capability files, and
//! declares the shell's own commands so capabilities can grant them by name.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "open_task_folder",
        "retry_task",
        "autostart_enabled",
        "set_autostart",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("the Tauri configuration and capabilities must be valid to build the shell");
}
