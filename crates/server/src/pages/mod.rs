//! The HTML pages under `/ui/`: server-rendered askama templates from the top-level `ui/`
//! folder, refreshed by htmx when a list changes. Handlers call the same `Coordinator`
//! methods as the JSON API and never know whether a browser or the desktop window asks.
//! Each form works as a plain post too; an htmx request gets a fragment instead of a page.

mod about;
mod assets;
mod logtail;
mod settings;
mod task_detail;
mod task_form;
mod tasks;
mod types;
mod views;
mod workers;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::ApiError;

pub use about::about_page;
pub use assets::static_get;
pub use settings::{settings_page, settings_save};
pub use task_detail::{task_summary_partial, tasks_detail_page};
pub use task_form::{
    custom_env_row_partial, new_task_partial, task_type_env_partial, tasks_create, tasks_new_page,
};
pub use tasks::{
    queue_pause, queue_resume, tasks_cancel, tasks_delete, tasks_page, tasks_retry,
    tasks_rows_partial,
};
pub use types::{types_detail_page, types_page, types_reload};
pub use workers::{
    new_worker_partial, worker_summary_partial, workers_delete, workers_detail_page,
    workers_launch, workers_new_page, workers_page, workers_restart, workers_rows_partial,
    workers_stop,
};

/// `GET /`: 301 to the UI, as the old server did (old scripts check for exactly 301).
pub async fn root_redirect() -> impl IntoResponse {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/ui/")])
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

/// Whether the request came from htmx (`HX-Request: true`), which wants a fragment, not a page.
#[derive(Clone, Copy, Debug)]
pub struct Hx(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Hx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Hx(is_htmx(&parts.headers)))
    }
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("hx-request")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// What went wrong in a page handler: a status and a message for a person.
#[derive(Debug)]
struct PageError {
    status: StatusCode,
    message: String,
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        let message = match error {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "page request failed");
                "internal error: the coordinator log has the details".to_string()
            }
            other => other.to_string(),
        };
        PageError { status, message }
    }
}

impl From<blanket_core::Error> for PageError {
    fn from(error: blanket_core::Error) -> Self {
        PageError::from(ApiError::from(error))
    }
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// The answer: a whole page for a browser, or a notice swapped into `#flash` for htmx.
    fn respond(self, htmx: bool) -> Response {
        if htmx {
            return flash_response(self.status, FlashKind::Error, &self.message, None);
        }
        let page = views::ErrorPage {
            chrome: views::Chrome::new("Error", views::Nav::None),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: self.message,
        };
        render(self.status, &page)
    }
}

/// How a notice in `#flash` looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlashKind {
    Success,
    Error,
}

/// A notice swapped into the page's `#flash` area, whatever element the request targeted.
fn flash_response(
    status: StatusCode,
    kind: FlashKind,
    message: &str,
    link: Option<(String, String)>,
) -> Response {
    let flash = views::Flash {
        error: kind == FlashKind::Error,
        message: message.to_string(),
        link,
    };
    let mut response = render(status, &flash);
    let headers = response.headers_mut();
    headers.insert("hx-retarget", HeaderValue::from_static("#flash"));
    headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
    response
}

/// Renders a template with `status`; a template that fails to render is a 500 and a log line.
fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            // Pages change with every task; a cached copy would show a stale list.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            tracing::error!(error = %error, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<p>internal error: the page could not be rendered</p>".to_string()),
            )
                .into_response()
        }
    }
}

/// 303 to `location`, the answer to a plain (non-htmx) form post.
fn see_other(location: &str) -> Response {
    let value =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/ui/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response()
}

/// Tells htmx to load `location` as a new page.
fn hx_redirect(location: &str) -> Response {
    let value =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/ui/"));
    (StatusCode::NO_CONTENT, [("hx-redirect", value)]).into_response()
}

/// A `next` form field made safe to redirect to: only paths of this UI, never another site.
fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(path)
            if (path == "/ui" || path.starts_with("/ui/") || path.starts_with("/ui?"))
                && !path.contains("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_paths_of_the_ui() {
        assert_eq!(safe_next(Some("/ui/workers"), "/ui/"), "/ui/workers");
        assert_eq!(
            safe_next(Some("/ui/?states=RUNNING"), "/ui/"),
            "/ui/?states=RUNNING"
        );
        assert_eq!(safe_next(Some("//evil.example/ui/"), "/ui/"), "/ui/");
        assert_eq!(safe_next(Some("https://evil.example/"), "/ui/"), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example"), "/ui/"), "/ui/");
        assert_eq!(safe_next(Some("/uix"), "/ui/"), "/ui/");
        assert_eq!(safe_next(None, "/ui/workers"), "/ui/workers");
    }

    #[test]
    fn escape_html_escapes_the_five_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
