//! The guards every request passes before a handler sees it: the Host check against DNS
//! rebinding, the bearer token, the Origin check against cross-site requests, plus the
//! stalled-body timeout, request id, tracing span, panic catcher and request metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::{ApiError, AppState};

/// The origins of the desktop app's webview, besides the server's own.
const DESKTOP_ORIGINS: &[&str] = &["tauri://localhost", "http://tauri.localhost"];
const REQUEST_ID_HEADER: &str = "x-request-id";

/// Puts the guards and the cross-cutting layers around `routes`.
pub fn wrap(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    let request_id_header = header::HeaderName::from_static(REQUEST_ID_HEADER);
    routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::stalled_body::limit_stalls,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), check_request))
        .layer(middleware::from_fn_with_state(state, count_request))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let matched = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("", MatchedPath::as_str);
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("");
                tracing::debug_span!("request", method = %request.method(), path = matched, request_id)
            }),
        )
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(PropagateRequestIdLayer::new(request_id_header.clone()))
        .layer(SetRequestIdLayer::new(request_id_header, CountingRequestId))
}

/// Request ids from a process-wide counter: unique, cheap, and easy to find in the log.
#[derive(Clone, Default)]
struct CountingRequestId;

impl MakeRequestId for CountingRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&id.to_string())
            .ok()
            .map(RequestId::new)
    }
}

async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(response.status(), started.elapsed());
    response
}

async fn check_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(error) = admit(&state, request.headers(), request.uri()) {
        return error.into_response();
    }
    next.run(request).await
}

fn admit(state: &AppState, headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
        .ok_or_else(|| {
            ApiError::Forbidden(
                "the request has no Host header: send one naming this server".into(),
            )
        })?;
    let host_name = host_name(host);
    let allowed = is_loopback_name(host_name)
        || state
            .options
            .allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host_name));
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "host {host_name:?} is not served here (this guards against DNS rebinding): use http://127.0.0.1 or add the name to allowed_hosts in the config"
        )));
    }
    if let Some(token) = &state.options.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .or_else(|| query_token(uri));
        let matches = presented
            .is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(token.as_bytes())));
        if !matches {
            return Err(ApiError::Unauthorized(
                "this server needs its token: send the header Authorization: Bearer <token> (the value of BLANKET_TOKEN)".into(),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = format!("http://{host}");
        let same_origin = origin.eq_ignore_ascii_case(&own)
            || DESKTOP_ORIGINS
                .iter()
                .any(|desktop| origin.eq_ignore_ascii_case(desktop));
        if !same_origin {
            return Err(ApiError::Forbidden(format!(
                "requests from origin {origin:?} are refused (this guards against cross-site requests from other web pages): use the Blanket UI at {own}"
            )));
        }
    }
    Ok(())
}

/// The host name of a `Host` header value, without port or IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _port)| name)
}

fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The token of an `Authorization: Bearer <token>` value; the scheme name is case-insensitive.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// EventSource cannot send headers, so a browser on a token-protected server passes it in
/// the query instead.
fn query_token(uri: &axum::http::Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_brackets() {
        assert_eq!(host_name("127.0.0.1:8773"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8773"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("evil.example:80"), "evil.example");
    }

    #[test]
    fn only_loopback_names_pass_by_default() {
        for name in [
            "localhost",
            "127.0.0.1",
            "127.3.4.5",
            "::1",
            "app.localhost",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }
}
