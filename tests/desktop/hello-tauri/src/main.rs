//! A bare Tauri window showing one static page: what any Tauri app costs on this machine.

fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!())
        .expect("the bare Tauri window runs");
}
