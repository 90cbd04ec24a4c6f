//! `blanket-bench`: starts the release `blanket serve` on temporary dirs and measures what the
//! project promises: the coordinator's durable submit rate, list latency, SSE fan-out delay and
//! idle cost; the worker runtime's latencies and rate; the CLI's; Blanket beside pueue; and,
//! from the reports of the browser and desktop scripts, the web UI's and the desktop app's.
//! Prints each figure against its goal and writes a Markdown report; it changes no product code.
//! Run it through `cargo xtask bench`, which builds the binaries and runs those scripts first.

mod client;
mod compare;
mod external;
mod fanout;
mod idle;
mod load;
mod report;
mod server;
mod stats;
mod system;
mod workers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use crate::report::{Figure, RunInfo, Verdict};
use crate::server::Server;
use crate::stats::{grouped, millis};
use crate::system::{CpuMeter, Machine};

/// Measures a release `blanket serve` and reports each figure against its goal.
#[derive(Parser, Debug)]
#[command(name = "blanket-bench", version, about)]
struct Args {
    /// The `blanket` binary to measure [default: the one beside this binary]
    #[arg(long)]
    blanket: Option<PathBuf>,
    /// A smoke run of about a minute: fewer samples, a smaller store, a 30 s idle window
    #[arg(long)]
    quick: bool,
    /// Write the Markdown report here
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also measure pueue (`pueue` and `pueued` must be on PATH) beside Blanket
    #[arg(long)]
    with_pueue: bool,
    /// The JSON report of `tests/browser/bench.mjs`, whose figures join this report
    #[arg(long, value_name = "FILE")]
    ui_report: Option<PathBuf>,
    /// The JSON report of `tests/desktop/figures.py`, whose figures join this report
    #[arg(long, value_name = "FILE")]
    desktop_report: Option<PathBuf>,
    /// A part of the project not measured in this run, and why (repeatable)
    #[arg(long, value_name = "TEXT")]
    not_measured: Vec<String>,
}

/// How much of each measurement a run does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    mode: &'static str,
    /// Submits before each timed submit run.
    warmup: u64,
    /// Length of each timed submit run.
    submit_time: Duration,
    /// Keep-alive connections of the timed submit runs, as the goal states.
    submit_connections: usize,
    /// Store size for the "full store" figures.
    stored_tasks: u64,
    /// Connections used to fill the store quickly.
    fill_connections: usize,
    list_samples: usize,
    subscribers: usize,
    rounds: usize,
    round_spacing: Duration,
    idle_window: Duration,
    /// Runs of each timed `blanket ps`.
    ps_runs: usize,
    workers: workers::WorkerPlan,
    compare: compare::ComparePlan,
    /// Longest the whole run waits, in total, for other programs to quieten down.
    settle_budget: Duration,
}

impl Plan {
    const FULL: Plan = Plan {
        mode: "full",
        warmup: 1_000,
        submit_time: Duration::from_secs(10),
        submit_connections: 2,
        stored_tasks: 100_000,
        fill_connections: 8,
        list_samples: 200,
        subscribers: 1_000,
        rounds: 50,
        round_spacing: Duration::from_millis(100),
        idle_window: Duration::from_secs(60),
        ps_runs: 21,
        workers: workers::WorkerPlan {
            starts: 200,
            cancels: 20,
            log_lines: 100,
            trivial_tasks: 1_000,
        },
        compare: compare::ComparePlan {
            cli_submits: 300,
            cli_submits_full: 30,
            starts: 30,
            http_time: Duration::from_secs(1),
        },
        settle_budget: Duration::from_secs(90),
    };

    const QUICK: Plan = Plan {
        mode: "quick",
        warmup: 300,
        submit_time: Duration::from_secs(3),
        submit_connections: 2,
        stored_tasks: 20_000,
        fill_connections: 8,
        list_samples: 50,
        subscribers: 1_000,
        rounds: 20,
        round_spacing: Duration::from_millis(100),
        idle_window: Duration::from_secs(30),
        ps_runs: 5,
        workers: workers::WorkerPlan {
            starts: 20,
            cancels: 5,
            log_lines: 20,
            trivial_tasks: 200,
        },
        compare: compare::ComparePlan {
            cli_submits: 30,
            cli_submits_full: 10,
            starts: 5,
            http_time: Duration::from_millis(300),
        },
        settle_budget: Duration::from_secs(20),
    };
}

// The goals, as the issue states them.
const SUBMIT_RATE_GOAL: f64 = 5_000.0;
const FULL_STORE_SLOWDOWN_GOAL: f64 = 1.5;
const LIST_P50_GOAL: Duration = Duration::from_millis(20);
const FANOUT_P99_GOAL: Duration = Duration::from_millis(10);
const IDLE_CPU_GOAL_PERCENT: f64 = 0.5;
const IDLE_RSS_GOAL_KIB: u64 = 30 * 1024;
const START_P50_GOAL: Duration = Duration::from_millis(5);
const START_P99_GOAL: Duration = Duration::from_millis(20);
const CANCEL_P99_GOAL: Duration = Duration::from_secs(1);
const LOG_LINE_P99_GOAL: Duration = Duration::from_millis(50);
const TASKS_PER_SECOND_GOAL: f64 = 200.0;
const PS_GOAL: Duration = Duration::from_millis(100);

/// Where the diagnostic in-memory run puts its data dir, when it is a tmpfs.
const MEMORY_DIR: &str = "/dev/shm";

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("blanket-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let plan = if args.quick { Plan::QUICK } else { Plan::FULL };
    let blanket = match args.blanket {
        Some(blanket) => blanket,
        None => beside_this_binary("blanket")?,
    };
    // Each subscriber costs a socket here and one in the server, plus slack for the rest.
    let wanted_files = plan.subscribers as u64 * 2 + 1_024;
    let open_files_limit = system::raise_open_files_limit(wanted_files)?;
    let date = time::OffsetDateTime::now_utc();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let mut measured = runtime.block_on(measure(&blanket, &plan, args.with_pueue))?;
    let reports: [(&str, Option<PathBuf>, ReportReader); 2] = [
        ("web UI", args.ui_report, external::ui_figures),
        ("desktop", args.desktop_report, external::desktop_figures),
    ];
    for (part, report, figures_of) in reports {
        let Some(report) = report else { continue };
        match figures_of(&report) {
            Ok(figures) => measured.figures.extend(figures),
            Err(error) => measured.not_measured.push(format!(
                "The {part} figures: its report is unusable ({error:#})."
            )),
        }
    }
    measured.not_measured.extend(args.not_measured);
    let duration = started.elapsed();
    let figures = &measured.figures;

    print!("\n{}", report::terminal_lines(figures));
    for note in &measured.not_measured {
        println!("not measured: {note}");
    }
    let misses = figures
        .iter()
        .filter(|figure| figure.verdict == Verdict::Miss)
        .count();
    println!(
        "{misses} goal(s) missed; measuring took {:.0} s",
        duration.as_secs_f64()
    );
    if let Some(out) = args.out {
        let run = RunInfo {
            date: format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                date.year(),
                u8::from(date.month()),
                date.day(),
                date.hour(),
                date.minute()
            ),
            mode: plan.mode,
            duration,
            open_files_limit,
        };
        let text = report::markdown(&Machine::describe(), &run, &measured);
        std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
        println!("report written to {}", out.display());
    }
    Ok(())
}

async fn measure(blanket: &Path, plan: &Plan, with_pueue: bool) -> Result<Measured> {
    let mut figures = Vec::new();
    let mut settle = Settle {
        budget: plan.settle_budget,
    };
    progress(&format!("starting {} serve", blanket.display()));
    let mut server = Server::start(blanket, None).await?;
    let file_system = system::file_system_type(&server.data_dir)
        .unwrap_or_else(|| "an unknown file system".to_owned());

    progress("timing submits on an empty store");
    settle.wait(&server).await?;
    let empty = load::submit_rate(
        &server,
        plan.submit_connections,
        plan.warmup,
        plan.submit_time,
    )
    .await?;
    let mut empty_figure = submit_figure("Durable submits, empty store", &empty, &file_system);
    empty_figure.verdict = Verdict::of(empty.rate() >= SUBMIT_RATE_GOAL);
    figures.push(empty_figure);

    progress(&format!(
        "filling the store to {} tasks",
        grouped(plan.stored_tasks)
    ));
    let fill = load::fill(&server, plan.stored_tasks, plan.fill_connections).await?;
    server.check_alive()?;

    progress("timing submits on the full store");
    settle.wait(&server).await?;
    let full = load::submit_rate(
        &server,
        plan.submit_connections,
        plan.warmup,
        plan.submit_time,
    )
    .await?;
    let slowdown = empty.rate() / full.rate();
    let mut full_figure = submit_figure(
        &format!(
            "Durable submits, {} stored tasks",
            grouped(plan.stored_tasks)
        ),
        &full,
        &file_system,
    );
    full_figure.goal = format!(
        "within {FULL_STORE_SLOWDOWN_GOAL}x of empty (>= {}/s)",
        grouped((empty.rate() / FULL_STORE_SLOWDOWN_GOAL) as u64)
    );
    full_figure.verdict = Verdict::of(slowdown <= FULL_STORE_SLOWDOWN_GOAL);
    full_figure.method.push_str(&format!(
        " Before it, the store was filled from {} to {} tasks over {} connections in {:.1} s ({}/s). \
         The empty-store rate is {slowdown:.2}x this one.",
        grouped(fill.stored_after - fill.submitted),
        grouped(fill.stored_after),
        fill.connections,
        fill.elapsed.as_secs_f64(),
        grouped((fill.submitted as f64 / fill.elapsed.as_secs_f64().max(f64::EPSILON)) as u64),
    ));
    figures.push(full_figure);

    progress("timing GET /task/?limit=500");
    settle.wait(&server).await?;
    let list = load::list_latency(&server, plan.list_samples).await?;
    figures.push(Figure {
        name: format!(
            "GET /task/?limit=500, {} stored tasks",
            grouped(list.stored)
        ),
        result: format!("p50 {}", millis(list.latencies.p50())),
        p50: Some(list.latencies.p50()),
        p99: Some(list.latencies.p99()),
        goal: format!("p50 <= {}", millis(LIST_P50_GOAL)),
        verdict: Verdict::of(list.latencies.p50() <= LIST_P50_GOAL),
        others_cpu: Some(list.cpu.others),
        method: format!(
            "{} sequential requests on one keep-alive connection, after 6 unmeasured ones; \
             each time runs from sending the request to the last byte of the body. \
             The store held {} tasks; each page is 500 tasks, {} KiB of JSON. Max {}. {}",
            list.latencies.len(),
            grouped(list.stored),
            list.body_bytes / 1024,
            millis(list.latencies.max()),
            cpu_text(&list.cpu),
        ),
    });

    progress(&format!(
        "fan-out to {} SSE subscribers",
        grouped(plan.subscribers as u64)
    ));
    let fanout =
        fanout::measure(&server, plan.subscribers, plan.rounds, plan.round_spacing).await?;
    figures.extend(fanout_figures(&fanout, plan));
    let (loaded_rss, loaded_peak) = system::resident_kib(server.pid())?;
    figures.push(Figure {
        name: "Memory after the load above".to_owned(),
        result: format!("{} RSS", mib(loaded_rss)),
        p50: None,
        p99: None,
        goal: String::new(),
        verdict: Verdict::Info,
        others_cpu: None,
        method: format!(
            "VmRSS of the server that ran the figures above, read from /proc after the fan-out \
             (peak VmHWM {}). For context only: the memory goal applies to the idle server below.",
            mib(loaded_peak)
        ),
    });
    progress("timing blanket ps on the loaded store");
    figures.push(ps_figure(blanket, &server, plan.ps_runs).await?);
    server.check_alive()?;
    let loaded_data = server.stop();

    let memory_dir = Path::new(MEMORY_DIR);
    if system::file_system_type(memory_dir).as_deref() == Some("tmpfs") {
        progress(&format!(
            "timing submits with the data dir in {MEMORY_DIR} (diagnostic)"
        ));
        let server = Server::start(blanket, Some(memory_dir)).await?;
        settle.wait(&server).await?;
        let in_memory = load::submit_rate(
            &server,
            plan.submit_connections,
            plan.warmup,
            plan.submit_time,
        )
        .await?;
        drop(server);
        let mut figure = submit_figure(
            &format!("Submits, empty store, data dir on tmpfs ({MEMORY_DIR})"),
            &in_memory,
            "tmpfs",
        );
        figure.goal = String::new();
        figure.method.push_str(&format!(
            " A diagnostic, not a goal: the same run with the data dir in memory, so neither \
             SQLite's writes nor the per-task result directory touch a disk. The gap to the \
             first figure is what {file_system} costs."
        ));
        figures.push(figure);
    }

    progress("worker runtime: start, cancel and log latencies, tasks per second");
    let worker_run = workers::measure(blanket, plan.workers).await?;
    figures.extend(worker_figures(&worker_run));

    let mut not_measured = Vec::new();
    let empty_queue = if with_pueue {
        progress("both CLIs on an empty queue, in alternating blocks");
        match compare::empty_queue_side_by_side(blanket, plan.compare).await {
            Ok(rates) => Some(rates),
            Err(error) => {
                not_measured.push(format!("pueue: {error:#}."));
                None
            }
        }
    } else {
        not_measured.push(
            "pueue, side by side: run `cargo xtask bench --with-pueue` to measure it.".to_owned(),
        );
        None
    };
    let (blanket_empty, pueue_empty) = empty_queue.unzip();
    progress("Blanket's side of the comparison with pueue");
    let blanket_side = compare::blanket(blanket, plan.compare, blanket_empty).await?;
    let pueue_side = match pueue_empty {
        Some(empty) => {
            progress("pueue's side of the comparison");
            match compare::pueue(plan.compare, empty) {
                Ok(side) => Some(side),
                Err(error) => {
                    not_measured.push(format!("pueue: {error:#}."));
                    None
                }
            }
        }
        None => None,
    };
    figures.extend(comparison_figures(&blanket_side, pueue_side.as_ref()));
    let comparison = report::comparison_section(&blanket_side, pueue_side.as_ref());

    progress(&format!(
        "a fresh server, idle for {} s",
        plan.idle_window.as_secs()
    ));
    let mut server = Server::start(blanket, None).await?;
    // The loaded server's folder goes while the idle server is watched: that window counts only
    // the idle server's own CPU and wake-ups, and the removal would otherwise add minutes.
    let removal = std::thread::spawn(move || drop(loaded_data));
    let idle = idle::measure(&mut server, plan.idle_window).await;
    drop(server);
    progress("removing the loaded server's data");
    if removal.join().is_err() {
        progress("the thread removing the loaded server's data panicked; some of it may remain");
    }
    let idle = idle?;
    figures.extend(idle_figures(&idle));
    Ok(Measured {
        figures,
        comparison,
        not_measured,
    })
}

/// Turns a script's JSON report into figures.
type ReportReader = fn(&Path) -> Result<Vec<Figure>>;

/// Everything one run measured, for the terminal and the report.
pub struct Measured {
    pub figures: Vec<Figure>,
    /// The side-by-side with pueue, as a Markdown section.
    pub comparison: String,
    /// Parts of the project this run did not measure, each with its reason.
    pub not_measured: Vec<String>,
}

/// `blanket ps` as a whole process, as a user runs it, against the loaded server.
async fn ps_figure(blanket: &Path, server: &Server, runs: usize) -> Result<Figure> {
    let stored = client::Connection::open(server.address)
        .await?
        .count_tasks()
        .await?;
    let url = format!("http://{}", server.address);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..=runs {
        let started = Instant::now();
        let output = std::process::Command::new(blanket)
            .arg("ps")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &server.data_dir)
            .env("XDG_CONFIG_HOME", server.data_dir.join("client-config"))
            .env("BLANKET_SERVER_URL", &url)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running blanket ps")?;
        times.push(started.elapsed());
        if !output.status.success() {
            anyhow::bail!(
                "blanket ps failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    // The first run only warms the page cache for the binary.
    times.remove(0);
    let times = stats::Latencies::new(times);
    Ok(Figure {
        name: format!("CLI: blanket ps, {} stored tasks", grouped(stored)),
        result: format!("median {}", millis(times.p50())),
        p50: Some(times.p50()),
        p99: Some(times.max()),
        goal: format!("<= {}", millis(PS_GOAL)),
        verdict: Verdict::of(times.p50() <= PS_GOAL),
        others_cpu: None,
        method: format!(
            "`blanket ps` (the default view: the newest tasks that fit a screen) as a whole process, from exec to exit, {} times after one unmeasured run, against the server of the figures above; the p99 column is the slowest run.",
            times.len()
        ),
    })
}

fn worker_figures(run: &workers::WorkerRun) -> Vec<Figure> {
    let setting = "A release `blanket serve --workers 1` with task types of the bench's own, on a temporary data dir; requests over one keep-alive connection.";
    let start = &run.submit_to_running;
    let cancel = &run.cancel_to_gone;
    let log = &run.log_line_to_client;
    vec![
        Figure {
            name: "Workers: submit -> the task's process running, 1 idle worker".to_owned(),
            result: format!("p99 {}", millis(start.p99())),
            p50: Some(start.p50()),
            p99: Some(start.p99()),
            goal: format!(
                "p50 <= {}, p99 <= {}",
                millis(START_P50_GOAL),
                millis(START_P99_GOAL)
            ),
            verdict: Verdict::of(start.p50() <= START_P50_GOAL && start.p99() <= START_P99_GOAL),
            others_cpu: None,
            method: format!(
                "{setting} {} tasks one after another, each `date +%s%N > started`: the time runs from the wall clock just before the submit to the one the task's `date` wrote, so it holds the HTTP round trip, the claim, and the fork and exec of the executor's shell and of `date`. Max {}.",
                start.len(),
                millis(start.max())
            ),
        },
        Figure {
            name: "Workers: cancel -> process group gone".to_owned(),
            result: format!("p99 {}", millis(cancel.p99())),
            p50: Some(cancel.p50()),
            p99: Some(cancel.p99()),
            goal: format!("p99 <= {}", millis(CANCEL_P99_GOAL)),
            verdict: Verdict::of(cancel.p99() <= CANCEL_P99_GOAL),
            others_cpu: None,
            method: format!(
                "{setting} {} running `sleep 30` tasks, each cancelled with `PUT /task/:id/cancel`; the time runs from just before the request until `kill(-pgid, 0)` says the task's process group is gone (polled every millisecond). Max {}.",
                cancel.len(),
                millis(cancel.max())
            ),
        },
        Figure {
            name: "Workers: log line written -> SSE client".to_owned(),
            result: format!("p99 {}", millis(log.p99())),
            p50: Some(log.p50()),
            p99: Some(log.p99()),
            goal: format!("p99 <= {}", millis(LOG_LINE_P99_GOAL)),
            verdict: Verdict::of(log.p99() <= LOG_LINE_P99_GOAL),
            others_cpu: None,
            method: format!(
                "{setting} A task printed its wall clock every 20 ms; a client of `GET /task/:id/log` (SSE) took the time each line arrived, for {} lines. Max {}.",
                log.len(),
                millis(log.max())
            ),
        },
        Figure {
            name: "Workers: trivial tasks end to end, 4 local workers".to_owned(),
            result: format!("{:.0} tasks/s", run.tasks_per_second()),
            p50: None,
            p99: None,
            goal: format!(">= {TASKS_PER_SECOND_GOAL:.0} tasks/s"),
            verdict: Verdict::of(run.tasks_per_second() >= TASKS_PER_SECOND_GOAL),
            others_cpu: None,
            method: format!(
                "A release `blanket serve --workers 4`: {} `true` tasks submitted one after another on one connection; the rate runs from the first submit until `GET /task/?states=SUCCESS,ERROR&count=true` counts them all ({:.2} s).",
                run.trivial_tasks,
                run.trivial_elapsed.as_secs_f64()
            ),
        },
    ]
}

fn comparison_figures(
    blanket: &compare::BlanketSide,
    pueue: Option<&compare::Side>,
) -> Vec<Figure> {
    let Some(empty) = blanket.side.levels.first() else {
        return Vec::new();
    };
    let pueue_empty = pueue.and_then(|side| side.levels.first());
    let (goal, verdict) = match pueue_empty {
        Some(pueue) => (
            format!(">= pueue add in the same run ({:.0}/s)", pueue.cli_rate),
            Verdict::of(empty.cli_rate >= pueue.cli_rate),
        ),
        None => (
            ">= pueue add in the same run (not measured: --with-pueue)".to_owned(),
            Verdict::Info,
        ),
    };
    vec![Figure {
        name: "CLI: blanket submit, one process per task, empty store".to_owned(),
        result: format!("{:.0}/s", empty.cli_rate),
        p50: None,
        p99: None,
        goal,
        verdict,
        others_cpu: None,
        method: format!(
            "{} `blanket submit -q -t echo_task` processes one after another, each from exec to exit, against a fresh `blanket serve --workers 0`{}. The same figure at other store sizes, and pueue's, are in the side-by-side below.",
            empty.cli_submits,
            if pueue_empty.is_some() {
                format!(
                    ", timed in {} blocks alternating with blocks of as many `pueue add -- true` against a fresh paused pueued, each block after 5 unmeasured; the rate is the median of the blocks', so both meet the same moments of the machine",
                    compare::EMPTY_QUEUE_BLOCKS
                )
            } else {
                " after 5 unmeasured".to_owned()
            }
        ),
    }]
}

/// Waits before a timed part until other programs leave the machine nearly idle, drawing on
/// one budget for the whole run, so a machine that never quietens is still measured (and the
/// report then warns about the figures it disturbed).
struct Settle {
    budget: Duration,
}

impl Settle {
    async fn wait(&mut self, server: &Server) -> Result<()> {
        const PROBE: Duration = Duration::from_secs(1);
        let mut announced = false;
        loop {
            let meter = CpuMeter::start(server.pid())?;
            tokio::time::sleep(PROBE).await;
            let others = meter.read()?.others;
            if others <= report::BUSY_OTHERS_PERCENT {
                return Ok(());
            }
            if self.budget.is_zero() {
                progress(&format!(
                    "other programs use {others:.0}% of a core; measuring anyway"
                ));
                return Ok(());
            }
            if !announced {
                progress(&format!(
                    "other programs use {others:.0}% of a core; waiting up to {} s for them",
                    self.budget.as_secs()
                ));
                announced = true;
            }
            self.budget = self.budget.saturating_sub(PROBE);
        }
    }
}

fn submit_figure(name: &str, run: &load::SubmitRun, file_system: &str) -> Figure {
    Figure {
        name: name.to_owned(),
        result: format!("{}/s", grouped(run.rate() as u64)),
        p50: Some(run.latencies.p50()),
        p99: Some(run.latencies.p99()),
        goal: format!(">= {}/s", grouped(SUBMIT_RATE_GOAL as u64)),
        verdict: Verdict::Info,
        others_cpu: Some(run.cpu.others),
        method: format!(
            "`POST /task/` with `{{\"type\":\"echo_task\"}}` over {} keep-alive HTTP/1.1 connections \
             (hyper, one request in flight per connection, all on one current-thread tokio runtime), \
             for {:.1} s after a warm-up; every answer had to be 201, which the server sends only \
             after the SQLite commit. The data dir was on {file_system}. \
             {} submits, starting at {} stored tasks; max latency {}. \
             {}",
            run.connections,
            run.elapsed.as_secs_f64(),
            grouped(run.submits),
            grouped(run.stored_before),
            millis(run.latencies.max()),
            cpu_text(&run.cpu),
        ),
    }
}

fn fanout_figures(fanout: &fanout::FanoutRun, plan: &Plan) -> Vec<Figure> {
    let subscribers = grouped(fanout.subscribers as u64);
    let goal = format!("p99 <= {}, no event lost", millis(FANOUT_P99_GOAL));
    let common = format!(
        "{subscribers} subscribers on `/ui/sse/tasks` over raw TCP, all in the bench process; then \
         {} submits, {} apart, on another connection. Each latency ends when the kernel put the \
         event into the subscriber's socket (SO_TIMESTAMPNS, wall clock on both ends). The bench \
         reads no subscriber while the server fans out: their sockets are outside its event loop, \
         so an arriving event wakes nothing in it, and it reads them all, without blocking, from \
         half-way to the next submit, the submit's 201 first (on 2 cores its reads would \
         otherwise take the server's CPU and delay the very events it times). {} samples; \
         subscriber-rounds without an event: {}; extra events: {}; events without a kernel \
         time: {}. The submits' 201s reached the bench after p50 {}, p99 {}. {}",
        fanout.rounds,
        millis(plan.round_spacing),
        grouped(fanout.kernel_latencies.len() as u64),
        fanout.missed,
        fanout.extra,
        fanout.unstamped,
        millis(fanout.submit_latencies.p50()),
        millis(fanout.submit_latencies.p99()),
        cpu_text(&fanout.cpu),
    );
    let kernel = &fanout.kernel_latencies;
    let after_answer = &fanout.kernel_after_answer;
    vec![
        Figure {
            name: format!("SSE fan-out, {subscribers} subscribers, submit sent -> event received"),
            result: format!("p99 {}", millis(kernel.p99())),
            p50: Some(kernel.p50()),
            p99: Some(kernel.p99()),
            goal: goal.clone(),
            verdict: Verdict::of(kernel.p99() <= FANOUT_P99_GOAL && fanout.missed == 0),
            others_cpu: Some(fanout.cpu.others),
            method: format!(
                "{common} Each latency starts just before a submit request is sent, so it is an \
                 upper bound on commit-to-event: it also holds the submit's own parsing and \
                 durable commit. Max {}; the last subscriber of each round got it after p50 {}, \
                 p99 {}.",
                millis(kernel.max()),
                millis(fanout.last_per_round_kernel.p50()),
                millis(fanout.last_per_round_kernel.p99()),
            ),
        },
        Figure {
            name: format!(
                "SSE fan-out, {subscribers} subscribers, 201 received -> event received (lower bound)"
            ),
            result: format!("p99 {}", millis(after_answer.p99())),
            p50: Some(after_answer.p50()),
            p99: Some(after_answer.p99()),
            goal: String::new(),
            verdict: Verdict::Info,
            others_cpu: Some(fanout.cpu.others),
            method: format!(
                "{common} Each latency starts when the submit's 201 reached the bench, and an \
                 event the kernel received before that counts as zero. The \
                 server answers 201 only after the commit, so every sample is at most the true \
                 commit-to-event time, and its p99 bounds the true p99 from below, as the kernel \
                 receive time above bounds it from above. Not judged: the goal is met for sure \
                 only when the upper bound meets it. Samples counted as zero: {}.",
                after_answer.count_zero(),
            ),
        },
    ]
}

fn cpu_text(cpu: &system::CpuUse) -> String {
    format!(
        "CPU meanwhile, in % of one core: server {:.0}%, bench {:.0}%, everything else on the \
         machine {:.0}%.",
        cpu.server, cpu.bench, cpu.others
    )
}

fn idle_figures(idle: &idle::IdleRun) -> Vec<Figure> {
    let window = format!("{:.0} s", idle.window.as_secs_f64());
    let by_thread = idle
        .wakeups_by_thread
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    let by_second = idle
        .wakeups_by_second
        .iter()
        .map(|(second, count)| format!("{second} s: {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    let keepalives = idle
        .keepalive_seconds
        .iter()
        .map(|second| format!("{second} s"))
        .collect::<Vec<_>>()
        .join(", ");
    let other_wakeups: u64 = idle.other_bursts.iter().map(|(_, _, count)| count).sum();
    let bursts = idle
        .other_bursts
        .iter()
        .map(|(first, last, count)| {
            if first == last {
                format!("{count} at {first} s")
            } else {
                format!("{count} at {first}-{last} s")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let setting = "A fresh server on an empty data dir answered `GET /version`, `GET /ui`, \
                   `GET /task/?limit=500`, three submits and another list on one connection, which \
                   then closed; 10 s later one SSE client connected to `/ui/sse/tasks` (keepalive \
                   every 30 s) and stayed. The window opened half a second after that.";
    vec![
        Figure {
            name: format!("Idle CPU ({window})"),
            result: format!("{:.3}%", idle.cpu_percent),
            p50: None,
            p99: None,
            goal: format!("< {IDLE_CPU_GOAL_PERCENT}%"),
            verdict: Verdict::of(idle.cpu_percent < IDLE_CPU_GOAL_PERCENT),
            others_cpu: None,
            method: format!(
                "{setting} CPU is the change in utime + stime of /proc/PID/stat over the window, \
                 divided by the wall time (100% = one core); the tick is 10 ms, so the resolution \
                 is about {:.3}%.",
                1.0 / idle.window.as_secs_f64().max(1.0)
            ),
        },
        Figure {
            name: "Idle RSS".to_owned(),
            result: mib(idle.rss_kib),
            p50: None,
            p99: None,
            goal: format!("<= {}", mib(IDLE_RSS_GOAL_KIB)),
            verdict: Verdict::of(idle.rss_kib <= IDLE_RSS_GOAL_KIB),
            others_cpu: None,
            method: format!(
                "VmRSS of /proc/PID/status at the end of the idle window (release build); \
                 the peak (VmHWM) was {}.",
                mib(idle.peak_rss_kib)
            ),
        },
        Figure {
            name: format!("Idle wake-ups ({window}, one SSE client)"),
            result: format!(
                "{} context switches, {} not from keepalives in {} burst(s)",
                idle.wakeups,
                other_wakeups,
                idle.other_bursts.len()
            ),
            p50: None,
            p99: None,
            goal: "none periodic beyond the keepalive".to_owned(),
            verdict: Verdict::of(idle.other_bursts.len() <= 1),
            others_cpu: None,
            method: format!(
                "Voluntary plus non-voluntary context switches of every thread \
                 (/proc/PID/task/*/status), read once a second. A wake-up counts as a keepalive's \
                 when it falls from 5 s before to 1 s after a keepalive the client received: \
                 tokio's timer wheel refiles a timer that is 30 s away once or twice in the last \
                 4.1 s, and each refiling is a wake-up. The other wake-ups are grouped into bursts \
                 (seconds at most 5 s apart); the goal is met with at most one burst, since a \
                 one-off (for example a check a fixed time after start) cannot be periodic within \
                 the window, while anything periodic would repeat. By thread: {}. \
                 By second of the window: {}. Keepalives received at: {}. \
                 Bursts not from keepalives: {}. Threads at start and end: {} and {}; a thread \
                 that exits in the window (tokio ends blocking-pool threads unused for 10 s) \
                 takes its last switch with it, so the count can be one short per such thread.",
                or_none(&by_thread),
                or_none(&by_second),
                or_none(&keepalives),
                or_none(&bursts),
                idle.threads.0,
                idle.threads.1
            ),
        },
    ]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

/// One line on stderr per step, with the time since the first, so a slow step stands out.
fn progress(step: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let since = START.get_or_init(Instant::now).elapsed();
    eprintln!("blanket-bench: [{:5.1} s] {step}", since.as_secs_f64());
}

/// `name` in the directory of the running binary, where cargo puts every binary of a profile.
fn beside_this_binary(name: &str) -> Result<PathBuf> {
    let this = std::env::current_exe().context("finding the blanket-bench binary")?;
    let dir = this
        .parent()
        .with_context(|| format!("{} has no parent directory", this.display()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        anyhow::bail!(
            "no {name} binary at {} (build it with `cargo build --release --bin {name}`, or pass --blanket)",
            path.display()
        );
    }
    Ok(path)
}
