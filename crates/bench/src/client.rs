//! A lean HTTP/1.1 client: one persistent hyper connection per `Connection`, with no pool,
//! retries or redirects, so the load generator spends as little CPU as possible per request.
//! It checks status codes, and parses a body only where the caller asks for JSON.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The task every submit creates: the smallest valid body, for a bundled type.
/// The body of every submit the bench makes.
pub const SUBMIT_BODY: &[u8] = br#"{"type":"echo_task"}"#;

/// One keep-alive connection to the server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    /// Connects to `address`; the connection's I/O runs as a task on the current runtime.
    ///
    /// # Errors
    /// When the TCP connection or the HTTP handshake fails.
    pub async fn open(address: SocketAddr) -> Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        // Requests are small and sent one at a time; Nagle would only add delay.
        stream
            .set_nodelay(true)
            .context("setting TCP_NODELAY on a client socket")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("starting HTTP/1.1 with {address}"))?;
        // An error here also fails the next `send_request`, where it is reported.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: address.to_string(),
        })
    }

    /// `POST /task/` with `{"type":"echo_task"}`; returns the time to the full 201 response.
    ///
    /// # Errors
    /// When the request fails or the answer is not 201 Created.
    pub async fn submit(&mut self) -> Result<Duration> {
        let request = Request::post("/task/")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(SUBMIT_BODY)))
            .context("building the submit request")?;
        let started = Instant::now();
        let (status, body) = self.send(request).await?;
        let elapsed = started.elapsed();
        if status != StatusCode::CREATED {
            bail!(
                "POST /task/ answered {status}, not 201: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(elapsed)
    }

    /// `GET path`; returns the status and the whole body.
    ///
    /// # Errors
    /// When the request fails (any status is returned, not judged).
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        let request = Request::get(path)
            .header(HOST, &self.host)
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("building the request GET {path}"))?;
        self.send(request).await
    }

    /// `method path` with a JSON body, or none; returns the answer parsed as JSON, which must
    /// have a 2xx status.
    ///
    /// # Errors
    /// When the request fails, the status is not a success, or the body is not JSON.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let what = format!("{method} {path}");
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .with_context(|| format!("building the request {what}"))?;
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            bail!(
                "{what} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).with_context(|| format!("the answer to {what} is not JSON"))
    }

    /// The number of stored tasks, from `GET /task/?count=true`.
    ///
    /// # Errors
    /// When the request fails or the answer is not a number.
    pub async fn count_tasks(&mut self) -> Result<u64> {
        let (status, body) = self.get("/task/?count=true").await?;
        if !status.is_success() {
            bail!("GET /task/?count=true answered {status}");
        }
        let text = std::str::from_utf8(&body).context("the task count is not text")?;
        text.trim()
            .parse()
            .with_context(|| format!("the task count {text:?} is not a number"))
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let what = format!("{} {}", request.method(), request.uri());
        self.sender
            .ready()
            .await
            .with_context(|| format!("{what}: the connection closed"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("sending {what}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {what}"))?
            .to_bytes();
        Ok((status, body))
    }
}
