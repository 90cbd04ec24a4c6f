//! Generates the bare window's Tauri context from its own tauri.conf.json, as any Tauri app
//! does: the yardstick must be built exactly like an ordinary app.

fn main() {
    tauri_build::build();
}
