//! The About page: the version, the configuration in effect (secrets hidden, notification
//! settings live, as `GET /config/` shows it), where the data and task types live, and links
//! to the API.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::render;
use super::views::{self, Chrome, Nav};
use crate::AppState;

/// `GET /ui/about`.
pub async fn about_page(State(state): State<AppState>) -> Response {
    let config = state.coordinator.config();
    let mut settings = Vec::new();
    flatten(
        "",
        &crate::api::meta::config_view(&state.coordinator),
        &mut settings,
    );
    let status = state.coordinator.status().await.ok();
    let page = AboutPage {
        chrome: Chrome::new("About", Nav::About),
        version: env!("CARGO_PKG_VERSION"),
        data_dir: config.data_dir.display().to_string(),
        database: config.database.display().to_string(),
        results_dir: config.results_dir.display().to_string(),
        types_dirs: config
            .types_dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect(),
        uptime: status
            .as_ref()
            .map(|status| views::short_duration(status.uptime_seconds))
            .unwrap_or_default(),
        task_count: status
            .as_ref()
            .map(|status| status.tasks.by_state.values().sum::<u64>())
            .unwrap_or(0),
        settings,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "about.html")]
struct AboutPage {
    chrome: Chrome,
    version: &'static str,
    data_dir: String,
    database: String,
    results_dir: String,
    types_dirs: Vec<String>,
    uptime: String,
    task_count: u64,
    /// Every setting as (dotted key, shown value).
    settings: Vec<(String, String)>,
}

/// `{"a": {"b": 1}}` as `("a.b", "1")`; lists joined with commas, `null` as "not set".
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        Value::Array(items) => {
            let shown: Vec<String> = items.iter().map(scalar).collect();
            let text = if shown.is_empty() {
                "(none)".to_string()
            } else {
                shown.join(", ")
            };
            out.push((prefix.to_string(), text));
        }
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "not set".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_flatten_to_dotted_keys() {
        let mut out = Vec::new();
        flatten(
            "",
            &serde_json::json!({"port": 8773, "token": null, "tags": ["a", "b"], "notify": {"mode": "all"}}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("notify.mode".to_string(), "all".to_string()),
                ("port".to_string(), "8773".to_string()),
                ("tags".to_string(), "a, b".to_string()),
                ("token".to_string(), "not set".to_string()),
            ]
        );
    }
}
