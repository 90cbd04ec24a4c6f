//! The one error type at `core`'s public surface.
//! Variants say what the caller can do about a failure, not which dependency failed,
//! so the server can map each to a status code in one `match`.

/// A failure of a core operation.
///
/// # Errors
/// `Invalid` is bad input (400), `NotFound` an unknown id or name (404), `Conflict` a
/// transition the current state does not allow (409), `Unavailable` storage that cannot
/// take writes right now (503), `Internal` a bug or an I/O failure nobody can fix by retrying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done, so the message names the path.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
