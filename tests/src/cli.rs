//! CLI helpers for the black-box suites: run the real `blanket` client commands against a
//! started [`Server`] (its URL and token in their environment, nothing else of the caller's),
//! and give the server a worker through the API so submitted tasks run.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::{Exit, Server, run_to_exit, wait_for_exit};

/// How long one client command may take before the test fails.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// A `blanket ARGS` command aimed at this server through `BLANKET_SERVER_URL` (and
    /// `BLANKET_TOKEN` when the server has a token), with the sandbox's home and XDG folders.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = self.sandbox().command();
        command.args(args).env("BLANKET_SERVER_URL", self.origin());
        if let Some(token) = &self.token {
            command.env("BLANKET_TOKEN", token);
        }
        command
    }

    /// Runs `blanket ARGS` against this server to its end.
    pub fn run_cli(&self, args: &[&str]) -> Exit {
        run_to_exit(self.cli(args), CLI_TIMEOUT)
    }

    /// Starts `blanket ARGS` against this server and returns at once, for a test that
    /// signals it while it runs.
    pub fn spawn_cli(&self, args: &[&str]) -> RunningCli {
        let dir = tempfile::tempdir().expect("creating a temp dir for the output");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let mut command = self.cli(args);
        command
            .stdout(File::create(&stdout).expect("creating the stdout file"))
            .stderr(File::create(&stderr).expect("creating the stderr file"));
        let child = command.spawn().expect("starting the blanket binary");
        RunningCli {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Launches a local worker with no tags (it takes any task) through `POST /worker/`;
    /// answers once it has registered, so submitted tasks run from then on.
    pub fn launch_any_worker(&self) -> Value {
        let reply = self.post_json("/worker/", r#"{"tags": []}"#);
        reply.expect_status(200);
        reply.json()
    }
}

impl Exit {
    /// The exit code; panics, showing the output, when a signal ended the process.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "blanket was killed by a signal ({})\nstdout: {}\nstderr: {}",
                self.status, self.stdout, self.stderr
            )
        })
    }

    /// Panics, showing the output, unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Exit {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A `blanket` client command still running, started by [`Server::spawn_cli`].
pub struct RunningCli {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunningCli {
    /// Sends `signal` (a name `kill` knows, such as `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the end (panics after [`CLI_TIMEOUT`]) and reads what it printed.
    pub fn finish(mut self) -> Exit {
        let Some(status) = wait_for_exit(&mut self.child, CLI_TIMEOUT) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("blanket was still running after {CLI_TIMEOUT:?}");
        };
        Exit {
            status,
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for RunningCli {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
