//! What the handler, page and OpenAPI tests share: the whole app on a store in a temp dir,
//! requests for it and its answers read whole. Each test file adds the requests it sends
//! and the checks it makes; nothing here asserts anything about an answer.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use blanket_core::Coordinator;
use blanket_core::config::Settings;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

/// The `Host` the tests send: the default address, which the guard admits.
pub const HOST: &str = "127.0.0.1:8773";

/// One answer, body read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The status, headers and whole body of `response`.
    pub async fn read(response: Response<Body>) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the body arrives whole")
            .to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The app (`blanket_server::app`) with `settings` on a new temp data folder, which lives as
/// long as the returned `TempDir`, and its coordinator.
pub async fn open_app(
    settings: Settings,
) -> (tempfile::TempDir, Coordinator, NormalizePath<Router>) {
    let data = tempfile::tempdir().expect("a temp data folder");
    let config = Settings {
        data_dir: Some(data.path().to_path_buf()),
        ..settings
    }
    .resolve()
    .expect("settings with a temp data folder resolve");
    let options = blanket_server::ServerOptions::from_config(&config);
    let coordinator = Coordinator::open(config)
        .await
        .expect("the coordinator opens on a temp data folder");
    let state = blanket_server::AppState::new(coordinator.clone(), options);
    (data, coordinator, blanket_server::app(state))
}

/// A request of `method` for `uri` with exactly `headers` and `body`.
pub fn request(method: Method, uri: &str, headers: HeaderMap, body: Body) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .expect("a valid request");
    *request.headers_mut() = headers;
    request
}

/// `app`'s response to `request`, its body not read yet.
pub async fn respond(app: &NormalizePath<Router>, request: Request<Body>) -> Response<Body> {
    app.clone()
        .oneshot(request)
        .await
        .expect("the router never fails")
}
