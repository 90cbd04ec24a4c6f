//! Requests whose body stops arriving. hyper's header-read timeout ends a connection that
//! stalls before its request head is complete; this ends one that stalls in its body, which
//! would otherwise hold its connection (an open file) and, for an upload, a half-written
//! staging folder for as long as the client keeps the socket open.
//!
//! A body that gives no bytes for the stall timeout while a handler waits on it fails with a
//! timeout error. Each extractor reports a failed body its own way (a 400 from the JSON one, a
//! malformed-multipart one from the upload, after removing what it had written), so whatever
//! the handler answered is replaced by one 408 that names the cause and closes the connection.
//! The timer runs only while a handler waits on the body, so a slow handler is never the
//! client's fault.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::{ApiError, AppState};

/// Gives the request a body that times out when the client pauses for the stall timeout, and
/// answers 408 when that is what ended the request.
pub async fn limit_stalls(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let timeout = state.options.stall_timeout;
    let stalled = Arc::new(AtomicBool::new(false));
    let watched = Arc::clone(&stalled);
    let request = request.map(|body| {
        Body::new(StallWatch {
            body: Box::pin(TimeoutBody::new(timeout, body)),
            stalled: watched,
        })
    });
    let response = next.run(request).await;
    if stalled.load(Ordering::Acquire) {
        return ApiError::Stalled(format!(
            "the request body stopped arriving: nothing came for {} s (header_timeout_seconds); send the whole body without pausing",
            timeout.as_secs()
        ))
        .into_response();
    }
    response
}

/// A request body that records whether it ended in a stall timeout.
struct StallWatch {
    // Boxed: the timeout's timer cannot move, and the watch is then free to.
    body: Pin<Box<TimeoutBody<Body>>>,
    stalled: Arc<AtomicBool>,
}

impl http_body::Body for StallWatch {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.body.as_mut().poll_frame(context);
        if let Poll::Ready(Some(Err(error))) = &polled
            && error.is::<TimeoutError>()
        {
            self.stalled.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
