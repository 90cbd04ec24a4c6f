//! `ApiError`, the one error type of the HTTP boundary, and the extractors `ApiJson` and
//! `ApiQuery`, so that every rejection answers in the same `{"error": "..."}` shape.
//! One `match` decides the status; a 5xx carries a generic text and the request id, the
//! cause goes to the log.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blanket_core::wire::ErrorBody;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request lacks the token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The request comes from somewhere it must not (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (404).
    #[error("{0}")]
    NotFound(String),
    /// The current state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// The client stopped sending its request body (408).
    #[error("{0}")]
    Stalled(String),
    /// Too many open streams (503 with a clear message, not a 5xx bug).
    #[error("{0}")]
    Busy(String),
    /// Anything the client cannot fix; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<blanket_core::Error> for ApiError {
    fn from(error: blanket_core::Error) -> Self {
        use blanket_core::Error;
        match error {
            Error::Invalid(message) => ApiError::BadRequest(message),
            Error::NotFound(message) => ApiError::NotFound(message),
            Error::Conflict(message) => ApiError::Conflict(message),
            Error::Unavailable(message) => ApiError::Busy(message),
            other @ (Error::Io { .. } | Error::Internal(_)) => {
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "request failed");
                "internal error: the coordinator log has the details (search it for this request's x-request-id)"
                    .to_string()
            }
            other => other.to_string(),
        };
        let mut response = (status, axum::Json(ErrorBody { error: message })).into_response();
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT
        ) {
            // A client turned away for want of capacity must not keep a connection, which is
            // an open file here, while it waits to try again; one that stalled mid-body has
            // left the connection in the middle of a request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A JSON body whose rejections are `ApiError`s: malformed JSON is a 400 with the parser's
/// line and column, an oversized body a 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => ApiError::BadRequest(format!(
            "the JSON body does not have the expected fields: {}",
            innermost_message(&error)
        )),
        JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest(format!(
            "the body is not valid JSON: {}",
            innermost_message(&error)
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
            "send the body as JSON with the header Content-Type: application/json".into(),
        ),
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge("the JSON body is larger than the 1 MiB limit".into())
        }
        other => ApiError::BadRequest(format!("the body could not be read: {}", other.body_text())),
    }
}

/// The innermost error's text (serde's message with line and column), without axum's prefix.
fn innermost_message(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The raw query string's pairs, decoded; lets handlers accept repeated keys and CSV alike.
pub struct ApiQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(ApiQuery(form_urlencoded_pairs(query)))
    }
}

impl ApiQuery {
    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The pairs as borrowed strings.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// `key` parsed as `T`, or a 400 naming the parameter and what it expects.
    pub fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter {key}={text:?} is not valid: expected {expected}"
                ))
            }),
        }
    }

    /// `key` as a boolean flag: `true`/`1`/`yes` or present without a value.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("" | "true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!(
                "query parameter {key}={other:?} is not valid: expected true or false"
            ))),
        }
    }
}

/// Decodes `a=1&b=x+y` into pairs; invalid percent escapes are kept literally.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let high = (bytes[index + 1] as char).to_digit(16);
                let low = (bytes[index + 2] as char).to_digit(16);
                match (high, low) {
                    (Some(high), Some(low)) => {
                        decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        index += 2;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_plus_percent_and_repeats() {
        let pairs = form_urlencoded_pairs(
            "states=RUNNING%2CWAITING&states=ERROR&createdAfter=2024%2F01%2F02+10%3A00&x",
        );
        assert_eq!(
            pairs,
            vec![
                ("states".to_string(), "RUNNING,WAITING".to_string()),
                ("states".to_string(), "ERROR".to_string()),
                ("createdAfter".to_string(), "2024/01/02 10:00".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
    }

    /// `text` as a browser's form encoding writes it: every byte but letters and digits
    /// escaped, spaces as `+` half of the time.
    fn form_encoded(text: &str, plus_for_space: bool) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(byte).to_string(),
                b' ' if plus_for_space => "+".to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn any_query_string_decodes_without_panicking(query in "\\PC{0,40}|[%+&=0-9a-fA-F]{0,40}") {
            let pairs = form_urlencoded_pairs(&query);
            proptest::prop_assert!(pairs.len() <= query.split('&').count());
        }

        #[test]
        fn encoded_pairs_decode_to_what_was_encoded(
            pairs in proptest::collection::vec(("\\PC{1,12}", "\\PC{0,12}"), 0..5),
            plus_for_space: bool,
        ) {
            let query = pairs
                .iter()
                .map(|(name, value)| format!("{}={}", form_encoded(name, plus_for_space), form_encoded(value, plus_for_space)))
                .collect::<Vec<_>>()
                .join("&");
            proptest::prop_assert_eq!(form_urlencoded_pairs(&query), pairs);
        }
    }

    #[test]
    fn broken_percent_escapes_are_kept_not_panicked_on() {
        for text in ["%", "%4", "%zz", "a%", "%%%", "%e9"] {
            let _ = percent_decode(text);
        }
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a%"), "a%");
    }

    #[tokio::test]
    async fn error_body_is_pinned_json() {
        use http_body_util::BodyExt;
        let response = ApiError::NotFound("task x not found".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error":"task x not found"}"#);
    }

    #[test]
    fn a_busy_answer_closes_its_connection() {
        let response = ApiError::Busy("too many open live streams (2)".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let response = ApiError::Conflict("already finished".into()).into_response();
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn internal_errors_keep_their_cause_out_of_the_body() {
        use http_body_util::BodyExt;
        let response = ApiError::Internal("disk /secret/path exploded".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("/secret/path"));
    }
}
