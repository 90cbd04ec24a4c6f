//! `blanket workers`: list the coordinator's workers and launch, stop, restart or forget
//! them over the REST API. Running a worker in this process is `blanket worker`, elsewhere.

use std::process::ExitCode;

use anyhow::Context;
use blanket_core::wire::{Worker, now};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, ClientArgs};
use crate::output::{Cell, Colour, Fit, Table, age, colour_on_stdout, table_width, worker_status};

// `blanket workers`: with no action, the list.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    #[command(subcommand)]
    action: Option<WorkersAction>,
    #[command(flatten)]
    list: ListArgs,
}

// What `blanket workers` does.
#[derive(Subcommand, Debug)]
pub enum WorkersAction {
    /// List the workers (the default)
    Ls(ListArgs),
    /// Launch a local worker process supervised by the coordinator
    Launch(LaunchArgs),
    /// Stop a worker after its current task (--force kills that task too)
    Stop(StopArgs),
    /// Start a stopped worker again with its tags
    Restart(OneWorkerArgs),
    /// Forget a worker that is not running
    Rm(OneWorkerArgs),
}

// `blanket workers ls`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print only ids, one a line
    #[arg(short, long)]
    quiet: bool,
    /// Print the workers as the coordinator's JSON
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket workers launch`.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Tags of the new worker; it runs tasks whose tags are all among them (CSV or repeat)
    #[arg(short, long = "tags", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Seconds between the worker's retries while the coordinator is unreachable
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    check_interval: f64,
    /// Print the new worker as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket workers stop`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// The worker (id, or a unique prefix of at least 6 characters)
    #[arg(value_name = "ID")]
    id: String,
    /// Kill its current task too
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket workers restart` and `rm`.
#[derive(Args, Debug)]
pub struct OneWorkerArgs {
    /// The worker (id, or a unique prefix of at least 6 characters)
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `blanket workers`.
///
/// # Errors
/// An id that names no worker, a change the worker's state does not allow, or a failed
/// request.
pub async fn run(args: WorkersArgs) -> anyhow::Result<ExitCode> {
    match args.action.unwrap_or(WorkersAction::Ls(args.list)) {
        WorkersAction::Ls(list) => list_workers(list).await,
        WorkersAction::Launch(launch) => {
            let client = Client::new(&launch.client)?;
            let request = client.request(Method::POST, "/worker/").json(&json!({
                "tags": launch.tags,
                "checkInterval": launch.check_interval,
            }));
            let response = client.send(request).await.context("launching a worker")?;
            let worker: Worker = client.read_json(response).await?;
            if launch.json {
                println!(
                    "{}",
                    serde_json::to_string(&worker).context("writing JSON")?
                );
            } else {
                println!("launched worker {} (pid {})", worker.id, worker.pid);
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkersAction::Stop(stop) => {
            let client = Client::new(&stop.client)?;
            let id = crate::ids::resolve_worker(&client, &stop.id).await?;
            let mut request = client.request(Method::PUT, &format!("/worker/{id}/stop"));
            if stop.force {
                request = request.query(&[("force", "true")]);
            }
            client
                .send(request)
                .await
                .with_context(|| format!("stopping worker {id}"))?;
            if stop.force {
                println!("stopping worker {id} and killing its task");
            } else {
                println!("stopping worker {id} after its current task");
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkersAction::Restart(one) => {
            let client = Client::new(&one.client)?;
            let id = crate::ids::resolve_worker(&client, &one.id).await?;
            let request = client.request(Method::PUT, &format!("/worker/{id}/restart"));
            let response = client
                .send(request)
                .await
                .with_context(|| format!("restarting worker {id}"))?;
            let worker: Worker = client.read_json(response).await?;
            println!("restarted worker {} (pid {})", worker.id, worker.pid);
            Ok(ExitCode::SUCCESS)
        }
        WorkersAction::Rm(one) => {
            let client = Client::new(&one.client)?;
            let id = crate::ids::resolve_worker(&client, &one.id).await?;
            let request = client.request(Method::DELETE, &format!("/worker/{id}"));
            client
                .send(request)
                .await
                .with_context(|| format!("removing worker {id}"))?;
            println!("removed worker {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list_workers(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    if args.json {
        let body = client
            .get_bytes(client.request(Method::GET, "/worker/"))
            .await
            .context("listing the workers")?;
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let workers: Vec<Worker> = client
        .get_json("/worker/")
        .await
        .context("listing the workers")?;
    if args.quiet {
        for worker in &workers {
            println!("{}", worker.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        eprintln!("no workers: `blanket workers launch` starts one");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now();
    let mut table = Table::new(vec![
        ("ID", Fit::Prefix(12)),
        ("STATUS", Fit::Fixed),
        ("PID", Fit::Fixed),
        ("TASK", Fit::Prefix(12)),
        ("HEARD", Fit::Fixed),
        ("TAGS", Fit::Ellipsis(4)),
    ]);
    for worker in &workers {
        let status = worker_status(worker.status);
        let colour = match status {
            "running" => Colour::Green,
            "lost" => Colour::Red,
            "stopping" => Colour::Yellow,
            _ => Colour::Dim,
        };
        table.push(vec![
            Cell::plain(worker.id.to_string()),
            Cell::coloured(status, colour),
            Cell::plain(worker.pid.to_string()),
            Cell::plain(
                worker
                    .current_task
                    .map_or_else(|| "-".to_owned(), |task| task.to_string()),
            ),
            Cell::plain(age(now, worker.last_heard_ts)),
            Cell::plain(worker.tags.join(", ")),
        ]);
    }
    print!("{}", table.render(table_width(), colour_on_stdout()));
    Ok(ExitCode::SUCCESS)
}
