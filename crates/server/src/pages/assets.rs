//! The static files of the UI (CSS, the live-update adapter, vendored htmx), embedded in the
//! binary at compile time so the pages work offline and need no install step.
//! URLs carry `?v=<content hash>`: a matching version is cached for a year, any other not at all.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiQuery;

/// One embedded file: its path under `/ui/static/`, its content type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../../ui/static/app.css"),
    },
    Asset {
        path: "live.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../ui/static/live.js"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../ui/static/app.js"),
    },
    Asset {
        path: "vendor/htmx/htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../ui/static/vendor/htmx/htmx.min.js"),
    },
    Asset {
        path: "vendor/htmx-ext-sse/sse.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../ui/static/vendor/htmx-ext-sse/sse.min.js"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../../../ui/static/favicon.svg"),
    },
];

/// A hash of every embedded file, so any change to any of them gives new URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    // FNV-1a: a fingerprint for cache busting, not a security boundary.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for asset in ASSETS {
        for byte in asset.path.bytes().chain(asset.bytes.iter().copied()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}").chars().take(12).collect()
});

/// The current asset version, the `v` of every static URL.
pub fn version() -> &'static str {
    VERSION.as_str()
}

/// `GET /ui/static/*path?v=VERSION`.
pub async fn static_get(Path(path): Path<String>, query: ApiQuery, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no static file {path:?} in this Blanket build"),
        )
            .into_response();
    };
    let etag = format!("\"{}\"", version());
    let current = query.get("v") == Some(version());
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == etag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_twelve_hex_characters_and_stable() {
        assert_eq!(version().len(), 12);
        assert!(
            version()
                .chars()
                .all(|character| character.is_ascii_hexdigit())
        );
        assert_eq!(version(), version());
    }

    #[test]
    fn every_asset_is_non_empty() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        }
    }
}
