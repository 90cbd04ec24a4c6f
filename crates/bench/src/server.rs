//! Starts the real `blanket serve` binary on a free loopback port with its data, HOME and XDG
//! dirs in a fresh temporary folder, waits until it answers, and stops it when dropped.
//! The bench measures the shipped binary this way, never a server built into this process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::Method;
use tempfile::TempDir;

use crate::client::Connection;
use crate::system;

/// How long a fresh server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `blanket serve` on temporary dirs; stopped, and its dirs removed, when dropped.
pub struct Server {
    child: Child,
    /// The server's data dir.
    pub data_dir: PathBuf,
    /// Where it listens.
    pub address: SocketAddr,
    log_path: PathBuf,
    // Removed after the child is killed (fields drop after `Drop::drop` runs), unless `stop`
    // took it to remove later.
    root: Option<TempDir>,
}

impl Server {
    /// Starts `binary serve --data-dir D --port P --workers 0` with the bundled task types and waits until
    /// `GET /version` answers. Its temporary folder goes in `parent`, or in the system's
    /// temporary dir when `None`.
    ///
    /// # Errors
    /// When the temporary dirs cannot be made, the binary cannot start, or it exits or stays
    /// silent for 30 s; the message then carries the end of its log.
    pub async fn start(binary: &Path, parent: Option<&Path>) -> Result<Server> {
        Server::launch(binary, parent, 0, &[]).await
    }

    /// Starts `binary serve --workers N` with only the task types in `types` (name and TOML),
    /// and waits until it answers and all its local workers are running.
    ///
    /// # Errors
    /// As [`Server::start`], and when the workers do not all report running within 30 s.
    pub async fn start_with_workers(
        binary: &Path,
        workers: usize,
        types: &[(&str, &str)],
    ) -> Result<Server> {
        let mut server = Server::launch(binary, None, workers, types).await?;
        server.wait_for_workers(workers).await?;
        Ok(server)
    }

    async fn launch(
        binary: &Path,
        parent: Option<&Path>,
        workers: usize,
        types: &[(&str, &str)],
    ) -> Result<Server> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("blanket-bench-");
        let root = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("creating a temporary folder for the server")?;
        let data_dir = root.path().join("data");
        let home = root.path().join("home");
        for dir in [&data_dir, &home] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let port = free_port()?;
        let types_dir = root.path().join("types");
        if !types.is_empty() {
            std::fs::create_dir_all(&types_dir)
                .with_context(|| format!("creating {}", types_dir.display()))?;
            for (name, text) in types {
                let path = types_dir.join(format!("{name}.toml"));
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        let log_path = root.path().join("server.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log_for_stdout = log
            .try_clone()
            .with_context(|| format!("opening {} twice", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--port",
                &port.to_string(),
                "--workers",
                &workers.to_string(),
            ])
            // A clean environment: no BLANKET_* or RUST_LOG from the caller, and every
            // per-user path inside the temporary folder, so the user's own data is never read.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_RUNTIME_DIR", root.path())
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log);
        if !types.is_empty() {
            command.arg("--types-dir").arg(&types_dir);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server {
            data_dir,
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path,
            root: Some(root),
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// Kills the server and hands over its temporary folder, so the caller can remove it when
    /// that disturbs no measurement: removing a hundred thousand task folders takes a while.
    pub fn stop(mut self) -> Option<TempDir> {
        self.end();
        self.root.take()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails with the log's tail when the server has exited.
    ///
    /// # Errors
    /// When the process is gone.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking on the server")? {
            bail!(
                "the server exited ({status}); the end of its log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    async fn wait_for_workers(&mut self, workers: usize) -> Result<()> {
        let started = Instant::now();
        let mut connection = Connection::open(self.address).await?;
        loop {
            self.check_alive()?;
            let list = connection.json(Method::GET, "/worker/", None).await?;
            let running = list.as_array().map_or(0, |workers| {
                workers
                    .iter()
                    .filter(|worker| worker["status"] == "running")
                    .count()
            });
            if running >= workers {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{running} of {workers} local workers were running after {START_TIMEOUT:?}; the end of the server's log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(mut connection) = Connection::open(self.address).await
                && let Ok((status, _)) = connection.get("/version").await
                && status.is_success()
            {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the server did not answer GET /version within {START_TIMEOUT:?}; the end of its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Server {
    /// Stops the server the way a user does, so it stops its local workers (a SIGKILL would
    /// leave them running against a dead port); kills it if it has not gone in time.
    fn end(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && system::terminate(self.child.id()).is_ok() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.end();
    }
}

/// A loopback port that was free a moment ago. Another program could take it before the
/// server binds it; the server would then fail at start with a clear message.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    let port = listener
        .local_addr()
        .context("reading the free port")?
        .port();
    Ok(port)
}
