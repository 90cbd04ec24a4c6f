//! The one error type of the shell's commands, serialised to the webview as `{code, message}`.
//! Separate so its JSON is pinned by a test: pages may branch on `code`, never on the text.

use serde::Serialize;

/// A command's failure as the webview sees it.
///
/// # Errors
/// `code` is `invalid`, `not_found`, `conflict`, `unavailable` or `internal`, the same classes
/// as the REST API's 400, 404, 409, 503 and 500; `message` says what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    /// The class of failure.
    pub code: &'static str,
    /// What failed and how to fix it.
    pub message: String,
}

impl ShellError {
    /// A failure because this window shows a coordinator running in another process.
    pub fn attached() -> ShellError {
        ShellError {
            code: "unavailable",
            message: "this window shows a coordinator running in another process: use its \
                      pages, or quit it and start Blanket again"
                .to_owned(),
        }
    }
}

impl From<blanket_core::Error> for ShellError {
    fn from(error: blanket_core::Error) -> ShellError {
        use blanket_core::Error;
        let code = match &error {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "unavailable",
            Error::Io { .. } | Error::Internal(_) => "internal",
        };
        if code == "internal" {
            // The cause is for the log; the page gets a message it can show.
            tracing::error!(error = %error, "a shell command failed");
            return ShellError {
                code,
                message: "Blanket could not do that: see its log for the cause".to_owned(),
            };
        }
        ShellError {
            code,
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_found_error_serialises_as_code_and_message() {
        let error = ShellError::from(blanket_core::Error::NotFound(
            "task 0123456789abcdef01234567 not found".into(),
        ));
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"code":"not_found","message":"task 0123456789abcdef01234567 not found"}"#
        );
    }

    #[test]
    fn an_internal_error_keeps_its_cause_out_of_the_message() {
        let error = ShellError::from(blanket_core::Error::Internal("secret detail".into()));
        assert_eq!(error.code, "internal");
        assert!(!error.message.contains("secret"));
    }
}
