//! `cargo bench -p blanket-cli --bench cli`: the CLI's figures against its goals, whole
//! processes as a user runs them: `blanket submit` one after another (submits/s, and
//! `pueue add` beside it when pueue is on PATH), and `blanket ps` with 100,000 stored tasks.
//! It starts its own `blanket serve` on a free loopback port in a temp folder and removes it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Submits timed one after another.
const SUBMITS: usize = 1000;
/// `pueue add`s timed one after another, when pueue is there.
const PUEUE_ADDS: usize = 1000;
/// Tasks stored before `blanket ps` is timed.
const STORED_TASKS: u64 = 100_000;
/// `blanket ps` runs per variant.
const PS_RUNS: usize = 21;
/// Concurrent requests while filling the store.
const FILL_CONCURRENCY: usize = 16;

const SUBMIT_GOAL_PER_SECOND: f64 = 340.0;
const PS_GOAL: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this without `--bench`: measuring is for `cargo bench` only.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("cli bench skipped: run it with `cargo bench -p blanket-cli --bench cli`");
        return Ok(());
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_blanket"));
    let dir = std::env::temp_dir().join(format!("blanket-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = measure(&binary, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn measure(binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Server::start(binary, dir, port)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    runtime.block_on(wait_until_up(&http, &url))?;
    println!("blanket CLI figures (release build, {} cores)", cores());
    println!("binary: {}", binary.display());

    // Submits: whole processes, one after another, as a shell loop runs them.
    let submit = |count: usize| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..count {
            let output = client_command(binary, dir, &url)
                .args(["submit", "-q", "-t", "echo_task"])
                .output()
                .context("running blanket submit")?;
            if !output.status.success() {
                bail!(
                    "blanket submit failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(started.elapsed())
    };
    submit(50)?;
    let took = submit(SUBMITS)?;
    let submits_per_second = SUBMITS as f64 / took.as_secs_f64();
    println!(
        "blanket submit, {SUBMITS} processes in a row: {submits_per_second:.0}/s ({:.2} ms each; goal >= {SUBMIT_GOAL_PER_SECOND:.0}/s, pueue's figure)",
        took.as_secs_f64() * 1000.0 / SUBMITS as f64
    );
    match pueue_adds_per_second(dir) {
        Ok(Some(rate)) => println!(
            "pueue add, {PUEUE_ADDS} processes in a row, same machine: {rate:.0}/s (blanket/pueue = {:.2})",
            submits_per_second / rate
        ),
        Ok(None) => println!("pueue add: not measured (pueue and pueued are not on PATH)"),
        Err(error) => println!("pueue add: not measured ({error:#})"),
    }

    // Fill the store to STORED_TASKS over the API, then time `blanket ps` variants.
    let filled = Instant::now();
    let stored = runtime.block_on(fill(&http, &url, STORED_TASKS))?;
    println!(
        "stored {stored} tasks ({:.1} s through POST /task/)",
        filled.elapsed().as_secs_f64()
    );
    for args in [
        vec!["ps"],
        vec!["ps", "-q"],
        vec!["ps", "--json"],
        vec!["ps", "-s", "WAITING", "-t", "echo_task", "--since", "1d"],
        vec!["ps", "-q", "--limit", "1000"],
    ] {
        let mut times = Vec::with_capacity(PS_RUNS);
        for _ in 0..PS_RUNS {
            let started = Instant::now();
            let output = client_command(binary, dir, &url)
                .args(&args)
                .output()
                .context("running blanket ps")?;
            times.push(started.elapsed());
            if !output.status.success() {
                bail!(
                    "blanket {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        let worst = times[times.len() - 1];
        let goal = if args.len() == 1 {
            format!(" (goal <= {} ms)", PS_GOAL.as_millis())
        } else {
            String::new()
        };
        println!(
            "blanket {:<44} with {stored} tasks: median {:.1} ms, max {:.1} ms{goal}",
            args.join(" "),
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        );
    }
    server.stop();
    Ok(())
}

/// A `blanket` client command with only the server's URL from our environment.
fn client_command(binary: &Path, dir: &Path, url: &str) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BLANKET_") {
            command.env_remove(name);
        }
    }
    command
        .env("BLANKET_SERVER_URL", url)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null());
    command
}

struct Server {
    child: Child,
}

impl Server {
    fn start(binary: &Path, dir: &Path, port: u16) -> anyhow::Result<Server> {
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(binary)
            .args(["serve", "--port", &port.to_string(), "--workers", "0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("BLANKET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting blanket serve")?;
        Ok(Server { child })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn wait_until_up(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{url}/version")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("blanket serve did not answer within 30 s")
}

/// Submits tasks until `target` are stored; returns how many are.
async fn fill(http: &reqwest::Client, url: &str, target: u64) -> anyhow::Result<u64> {
    let count = |http: reqwest::Client| async move {
        let text = http
            .get(format!("{url}/task/?count=true"))
            .send()
            .await?
            .text()
            .await?;
        anyhow::Ok(text.trim().parse::<u64>()?)
    };
    let missing = target.saturating_sub(count(http.clone()).await?);
    let per_lane = missing.div_ceil(FILL_CONCURRENCY as u64);
    let mut lanes = Vec::new();
    for lane in 0..FILL_CONCURRENCY as u64 {
        let http = http.clone();
        let url = url.to_owned();
        let todo = per_lane.min(missing.saturating_sub(lane * per_lane));
        lanes.push(tokio::spawn(async move {
            for _ in 0..todo {
                let response = http
                    .post(format!("{url}/task/"))
                    .header("content-type", "application/json")
                    .body(r#"{"type":"echo_task"}"#)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("POST /task/ answered {}", response.status());
                }
            }
            anyhow::Ok(())
        }));
    }
    for lane in lanes {
        lane.await??;
    }
    count(http.clone()).await
}

/// `pueue add` per second on a paused queue of its own daemon, or `None` without pueue.
fn pueue_adds_per_second(dir: &Path) -> anyhow::Result<Option<f64>> {
    let found = |name: &str| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|folder| folder.join(name))
                .find(|candidate| candidate.is_file())
        })
    };
    let (Some(pueue), Some(pueued)) = (found("pueue"), found("pueued")) else {
        return Ok(None);
    };
    let home = dir.join("pueue");
    std::fs::create_dir_all(&home)?;
    let config = home.join("pueue.yml");
    std::fs::write(
        &config,
        format!(
            "shared:\n  pueue_directory: {0}\n  runtime_directory: {0}\n  use_unix_socket: true\n  unix_socket_path: {0}/pueue.socket\n",
            home.display()
        ),
    )?;
    let mut daemon = Command::new(pueued)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting pueued")?;
    let client = |args: &[&str]| {
        Command::new(&pueue)
            .arg("-c")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client(&["status"]).is_ok_and(|output| output.status.success()) {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            bail!("pueued did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    client(&["pause"])?;
    let add = |count: usize| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..count {
            let output = client(&["add", "--", "true"])?;
            if !output.status.success() {
                bail!(
                    "pueue add failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(started.elapsed())
    };
    let outcome = add(50).and_then(|_| add(PUEUE_ADDS));
    let _ = client(&["shutdown"]);
    let _ = daemon.wait();
    Ok(Some(PUEUE_ADDS as f64 / outcome?.as_secs_f64()))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
