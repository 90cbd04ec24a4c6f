//! The client commands' HTTP connection to a coordinator: where it is (flag, environment,
//! config file, default), the token, and turning transport failures and `{"error": ...}`
//! answers into messages that say what to do. REST only: it never opens the database.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use blanket_core::config::{Config, Settings};
use blanket_core::wire::ErrorBody;
use clap::Args;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// The coordinator's address when nothing names one.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8773";

/// How long connecting may take before the coordinator counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

// Flags every client command takes to find its coordinator.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// The coordinator's URL [default: the config file's port on 127.0.0.1, else http://127.0.0.1:8773]
    #[arg(
        long,
        env = "BLANKET_SERVER_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub server: Option<String>,
    /// Token for a coordinator that needs one
    #[arg(
        long,
        env = "BLANKET_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Connection"
    )]
    pub token: Option<String>,
    /// Config file to find the coordinator's port and token in [default: ~/.config/blanket/config.toml]
    #[arg(
        long,
        env = "BLANKET_CONFIG",
        value_name = "FILE",
        help_heading = "Connection"
    )]
    pub config: Option<PathBuf>,
}

/// A failed answer of the coordinator: its status and the message of its `{"error": ...}`.
#[derive(Debug)]
pub struct HttpError {
    /// The HTTP status code.
    pub status: StatusCode,
    /// What the coordinator said, or a description of an answer that was not JSON.
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

/// A connection to one coordinator; cheap to share by reference.
pub struct Client {
    http: reqwest::Client,
    base: String,
    sends_token: bool,
}

impl Client {
    /// Finds the coordinator `args` name and prepares a connection; does not contact it yet.
    ///
    /// # Errors
    /// A malformed URL or token, or a config file or `BLANKET_*` variable that cannot be read.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let (base, token) = resolve(args)?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token holds characters a header cannot carry: use printable ASCII")?;
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            // The coordinator is on this machine or the local network: a proxy would be wrong.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .default_headers(headers)
            .user_agent(concat!("blanket-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("setting up the HTTP client")?;
        Ok(Client {
            http,
            base,
            sends_token: token.is_some(),
        })
    }

    /// The coordinator's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request for `path` (which starts with `/`), not sent yet.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends `request`; a non-2xx answer becomes an [`HttpError`] carrying the coordinator's
    /// message, a refused connection the advice to start a coordinator.
    ///
    /// # Errors
    /// [`HttpError`] for an error answer; a transport error otherwise.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.error_answer(response).await.into())
    }

    /// `GET path`, its JSON body read into `T`.
    ///
    /// # Errors
    /// As [`Client::send`], or a body that is not the JSON expected.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.send(self.request(Method::GET, path)).await?;
        self.read_json(response).await
    }

    /// `GET path`, the body as bytes.
    ///
    /// # Errors
    /// As [`Client::send`], or a body cut off.
    pub async fn get_bytes(&self, request: RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = self.send(request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        Ok(bytes.to_vec())
    }

    /// Reads a JSON body into `T`.
    ///
    /// # Errors
    /// A body cut off or not the JSON expected (a coordinator of another version).
    pub async fn read_json<T: DeserializeOwned>(&self, response: Response) -> anyhow::Result<T> {
        let url = response.url().path().to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the coordinator at {} answered {url} with JSON this blanket does not understand: \
                 use a blanket of the same version as the coordinator",
                self.base
            )
        })
    }

    /// Turns a transport failure into a message saying what to do.
    pub fn transport_error(&self, error: reqwest::Error) -> anyhow::Error {
        if error.is_connect() {
            if is_refused(&error) {
                return anyhow::anyhow!(
                    "no coordinator at {}: start it with `blanket serve` or the desktop app \
                     (or point --server / BLANKET_SERVER_URL at the right one)",
                    self.base
                );
            }
            return anyhow::Error::new(error).context(format!(
                "cannot reach the coordinator at {}: check --server / BLANKET_SERVER_URL, and \
                 start it with `blanket serve` or the desktop app",
                self.base
            ));
        }
        anyhow::Error::new(error).context(format!(
            "the connection to the coordinator at {} failed",
            self.base
        ))
    }

    async fn error_answer(&self, response: Response) -> HttpError {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let said = serde_json::from_slice::<ErrorBody>(&body)
            .map(|body| body.error)
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() {
                    format!("the coordinator at {} answered {status}", self.base)
                } else {
                    let snippet: String = text.chars().take(200).collect();
                    format!(
                        "the coordinator at {} answered {status}: {snippet}",
                        self.base
                    )
                }
            });
        let message = if status == StatusCode::UNAUTHORIZED {
            if self.sends_token {
                format!(
                    "the coordinator at {} refused the token: set BLANKET_TOKEN (or --token) to \
                     the token it was started with",
                    self.base
                )
            } else {
                format!(
                    "the coordinator at {} needs a token: set BLANKET_TOKEN (or pass --token) to \
                     the token it was started with",
                    self.base
                )
            }
        } else {
            said
        };
        HttpError { status, message }
    }
}

/// The [`HttpError`] status of `error`, when it is one.
pub fn http_status(error: &anyhow::Error) -> Option<StatusCode> {
    error.downcast_ref::<HttpError>().map(|error| error.status)
}

/// The base URL and token: `--server`/`BLANKET_SERVER_URL`, else the config file's port (and
/// its token when none is given), else the default.
fn resolve(args: &ClientArgs) -> anyhow::Result<(String, Option<String>)> {
    let token = args.token.clone().filter(|token| !token.trim().is_empty());
    if let Some(server) = args.server.as_deref().filter(|url| !url.trim().is_empty()) {
        return Ok((normalise_url(server)?, token));
    }
    let config = Config::load(
        args.config.as_deref(),
        |name| std::env::var(name).ok(),
        Settings::default(),
    )
    .context("reading the configuration to find the coordinator (or give --server URL)")?;
    if config.port == 0 {
        anyhow::bail!(
            "the configuration sets port 0 (a free port picked at start), so the coordinator's \
             address is unknown: give it with --server URL or BLANKET_SERVER_URL"
        );
    }
    let host = if config.bind.is_unspecified() || config.bind.is_loopback() {
        "127.0.0.1".to_owned()
    } else if config.bind.is_ipv6() {
        format!("[{}]", config.bind)
    } else {
        config.bind.to_string()
    };
    let url = if config.port == 8773 && host == "127.0.0.1" {
        DEFAULT_SERVER_URL.to_owned()
    } else {
        format!("http://{host}:{}", config.port)
    };
    Ok((url, token.or(config.token)))
}

/// Accepts `host:port` without a scheme, and drops a trailing slash.
fn normalise_url(text: &str) -> anyhow::Result<String> {
    let text = text.trim().trim_end_matches('/');
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let parsed = reqwest::Url::parse(&url).with_context(|| {
        format!("server URL {text:?} is not a URL: give one like http://127.0.0.1:8773")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!(
            "server URL {text:?} is not http or https: give one like http://127.0.0.1:8773"
        );
    }
    Ok(url)
}

fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_without_scheme_gets_http() {
        assert_eq!(
            normalise_url("127.0.0.1:9000/").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            normalise_url("https://blanket.lan").unwrap(),
            "https://blanket.lan"
        );
    }

    #[test]
    fn server_url_with_another_scheme_is_refused() {
        let error = normalise_url("ftp://example").unwrap_err().to_string();
        assert!(error.contains("http://127.0.0.1:8773"), "{error}");
    }

    #[test]
    fn flag_wins_over_config_and_keeps_the_token() {
        let args = ClientArgs {
            server: Some("http://127.0.0.1:1234".into()),
            token: Some("secret".into()),
            config: None,
        };
        let (url, token) = resolve(&args).unwrap();
        assert_eq!(url, "http://127.0.0.1:1234");
        assert_eq!(token.as_deref(), Some("secret"));
    }
}
