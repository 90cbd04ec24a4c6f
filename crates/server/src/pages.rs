//! The HTML pages under `/ui/`. For now a single landing page titled Blanket that points at
//! the API; the full HTMX interface replaces it, keeping the old UI's hooks.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};

/// `GET /`: 301 to the UI, as the old server did (old scripts check for exactly 301).
pub async fn root_redirect() -> impl IntoResponse {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/ui/")])
}

/// `GET /ui/`.
pub async fn home() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Blanket</title></head>\n",
        "<body><h1>Blanket</h1>\n<p>The coordinator is running.</p>\n<ul>\n",
        "<li><a href=\"/task/\">Tasks (JSON)</a></li>\n<li><a href=\"/task_type/\">Task types (JSON)</a></li>\n",
        "<li><a href=\"/worker/\">Workers (JSON)</a></li>\n<li><a href=\"/openapi.json\">API description</a></li>\n",
        "</ul></body></html>\n"
    ))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}
