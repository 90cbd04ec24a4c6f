//! A bare Tauri window showing one static page: what any Tauri app costs on this machine.
//! It says when its page has loaded, as blanket-desktop logs it, so figures.py can time a
//! start without WebDriver.

use tauri::webview::PageLoadEvent;

fn main() {
    tauri::Builder::default()
        .on_page_load(|_webview, payload| {
            if matches!(payload.event(), PageLoadEvent::Finished) {
                println!("page loaded in the window");
            }
        })
        .run(tauri::generate_context!())
        .expect("the bare Tauri window runs");
}
