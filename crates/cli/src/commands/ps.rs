//! `blanket ps`: the task list with the filters of `GET /task/`, as a table sized to the
//! terminal, ids only (`-q`), the coordinator's JSON (`--json`) or the old CLI's
//! `--template`. By default only the newest tasks are fetched, so a long history stays fast.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use blanket_core::TaskState;
use blanket_core::filter::MAX_LIMIT;
use blanket_core::wire::{Task, now};
use clap::Args;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::client::{Client, ClientArgs};
use crate::output::{Cell, Fit, Table, age, colour_on_stdout, short_duration, state_colour};

/// How many tasks `ps` shows without `--limit` or `--all`.
pub const DEFAULT_LIMIT: usize = 50;

// `blanket ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Only tasks in these states: WAITING, CLAIMED, RUNNING, SUCCESS, ERROR, STOPPED, TIMEDOUT (CSV or repeat)
    #[arg(
        short = 's',
        long = "state",
        visible_alias = "states",
        value_name = "STATE",
        value_delimiter = ','
    )]
    states: Vec<String>,
    /// Only tasks of these types (CSV or repeat)
    #[arg(
        short = 't',
        long = "type",
        visible_alias = "types",
        value_name = "TYPE",
        value_delimiter = ','
    )]
    types: Vec<String>,
    /// Only tasks that have all of these tags (CSV or repeat)
    #[arg(
        long = "tag",
        visible_alias = "requiredTags",
        value_name = "TAG",
        value_delimiter = ','
    )]
    tags: Vec<String>,
    /// Only tasks whose every tag is among these (CSV or repeat)
    #[arg(
        long = "max-tags",
        visible_alias = "maxTags",
        value_name = "TAG",
        value_delimiter = ','
    )]
    max_tags: Vec<String>,
    /// Only tasks created at or after this: a date (2024-05-01, 2024-05-01T12:30, RFC 3339,
    /// unix seconds; UTC unless a zone is given) or an age such as 30m, 2h, 3d
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only tasks created before this (same forms as --since)
    #[arg(long, value_name = "WHEN")]
    before: Option<String>,
    /// Show the newest N matching tasks
    #[arg(short, long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// Show every matching task (pages through a long history)
    #[arg(short, long, conflicts_with = "limit")]
    all: bool,
    /// Print only ids, one a line (`blanket ps -q --state WAITING | xargs blanket cancel`)
    #[arg(short, long)]
    quiet: bool,
    /// Print the tasks as the coordinator's JSON array
    #[arg(long, conflicts_with_all = ["quiet", "template"])]
    json: bool,
    /// Print each task through a template, e.g. '{{.id}} {{.type}} {{.state}}' (JSON field names)
    #[arg(long, conflicts_with = "quiet")]
    template: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `blanket ps`.
///
/// # Errors
/// A bad filter value (the message lists the accepted ones), or a failed request.
pub async fn run(args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters = filters(&args)?;
    if args.limit > MAX_LIMIT {
        anyhow::bail!(
            "--limit {} is over {MAX_LIMIT}: use --all to list everything",
            args.limit
        );
    }
    let client = Client::new(&args.client)?;
    if args.json {
        // Each task exactly as the coordinator wrote it: a `Value` would sort its keys, and
        // scripts read the fields in the REST order.
        let tasks: Vec<Box<RawValue>> = fetch(&client, &filters, &args).await?;
        let text = serde_json::to_string(&tasks).context("writing JSON")?;
        writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let tasks: Vec<Value> = fetch(&client, &filters, &args).await?;
    let mut stdout = std::io::stdout().lock();
    if args.quiet {
        for task in &tasks {
            let id = task["id"].as_str().unwrap_or_default();
            writeln!(stdout, "{id}").context("writing to standard output")?;
        }
    } else if let Some(template) = &args.template {
        for task in &tasks {
            let fields = template_fields(task);
            let line = blanket_core::template::render(template, &fields)
                .context("reading --template: it takes {{.field}} references only")?;
            writeln!(stdout, "{line}").context("writing to standard output")?;
        }
    } else if tasks.is_empty() {
        drop(stdout);
        eprintln!("no tasks match");
    } else {
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .context(
                "the coordinator sent tasks this blanket does not understand: use a blanket \
                 of the same version as the coordinator",
            )?;
        let table = table(&tasks, now());
        let text = table.render(crate::output::table_width(), colour_on_stdout());
        stdout
            .write_all(text.as_bytes())
            .context("writing to standard output")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The query pairs of the filters, checked here so a mistake is caught before any request.
fn filters(args: &PsArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut pairs = Vec::new();
    if !args.states.is_empty() {
        let mut states = Vec::new();
        for state in args.states.iter().filter(|state| !state.trim().is_empty()) {
            let state = TaskState::from_str(state.trim())
                .map_err(|error| anyhow::anyhow!("--state: {error}"))?;
            states.push(state.as_str());
        }
        pairs.push(("states", states.join(",")));
    }
    for (key, values) in [
        ("types", &args.types),
        ("requiredTags", &args.tags),
        ("maxTags", &args.max_tags),
    ] {
        if !values.is_empty() {
            pairs.push((key, values.join(",")));
        }
    }
    if let Some(since) = &args.since {
        pairs.push(("createdAfter", parse_when(since, "--since")?.to_string()));
    }
    if let Some(before) = &args.before {
        pairs.push(("createdBefore", parse_when(before, "--before")?.to_string()));
    }
    Ok(pairs)
}

/// A point in time: an age (`90s`, `30m`, `2h`, `3d`, `1w`) or any form the API takes.
fn parse_when(text: &str, flag: &str) -> anyhow::Result<i64> {
    let trimmed = text.trim();
    let units = [
        ('s', 1),
        ('m', 60),
        ('h', 3600),
        ('d', 86_400),
        ('w', 604_800),
    ];
    if let Some((unit, seconds)) = units
        .iter()
        .find(|(unit, _)| trimmed.ends_with(*unit) && trimmed.len() > 1)
        && let Ok(count) = trimmed.trim_end_matches(*unit).parse::<i64>()
    {
        return Ok(now() - count.saturating_mul(*seconds));
    }
    blanket_core::filter::parse_time(trimmed)
        .map_err(|error| anyhow::anyhow!("{flag}: {error}, or an age such as 30m, 2h or 3d"))
}

/// The tasks `args` ask for, oldest first: every match with `--all`, else the newest
/// `--limit`, with a note on stderr when more match.
async fn fetch<T: DeserializeOwned>(
    client: &Client,
    filters: &[(&'static str, String)],
    args: &PsArgs,
) -> anyhow::Result<Vec<T>> {
    if args.all {
        return fetch_all(client, filters).await;
    }
    let (tasks, more) = fetch_newest(client, filters, args.limit).await?;
    if more {
        eprintln!(
            "showing the newest {} matching tasks; more match: --limit N or --all shows them",
            args.limit
        );
    }
    Ok(tasks)
}

/// The newest `limit` tasks, oldest first, as the coordinator sent them (fields this
/// version does not know included), and whether more match. One more task than shown is
/// asked for to tell, which costs less than counting them all.
async fn fetch_newest<T: DeserializeOwned>(
    client: &Client,
    filters: &[(&'static str, String)],
    limit: usize,
) -> anyhow::Result<(Vec<T>, bool)> {
    let asked = if limit < MAX_LIMIT { limit + 1 } else { limit };
    let request = client
        .request(Method::GET, "/task/")
        .query(filters)
        .query(&[("limit", asked.to_string()), ("reverseSort", "true".into())]);
    let response = client.send(request).await.context("listing the tasks")?;
    let mut tasks: Vec<T> = client.read_json(response).await?;
    let more = tasks.len() > limit;
    tasks.truncate(limit);
    tasks.reverse();
    Ok((tasks, more))
}

/// Every matching task, oldest first, a page of [`MAX_LIMIT`] at a time.
async fn fetch_all<T: DeserializeOwned>(
    client: &Client,
    filters: &[(&'static str, String)],
) -> anyhow::Result<Vec<T>> {
    let mut tasks: Vec<T> = Vec::new();
    loop {
        let request = client
            .request(Method::GET, "/task/")
            .query(filters)
            .query(&[
                ("limit", MAX_LIMIT.to_string()),
                ("offset", tasks.len().to_string()),
            ]);
        let response = client.send(request).await.context("listing the tasks")?;
        let page: Vec<T> = client.read_json(response).await?;
        let full = page.len() == MAX_LIMIT;
        tasks.extend(page);
        if !full {
            return Ok(tasks);
        }
    }
}

/// The table `blanket ps` prints.
fn table(tasks: &[Task], now: i64) -> Table {
    let mut table = Table::new(vec![
        // Never cut: ids of one second share their first 16 characters or so.
        ("ID", Fit::Fixed),
        ("TYPE", Fit::Ellipsis(8)),
        ("STATE", Fit::Fixed),
        ("EXIT", Fit::Fixed),
        ("CREATED", Fit::Fixed),
        ("TIME", Fit::Fixed),
        ("TAGS", Fit::Ellipsis(4)),
    ]);
    for task in tasks {
        let state = match task.state {
            TaskState::Running => format!("{} {}%", task.state, task.progress),
            _ => task.state.to_string(),
        };
        let exit = task
            .exit_code
            .map_or_else(|| "-".to_owned(), |code| code.to_string());
        let time = if task.started_ts <= 0 {
            "-".to_owned()
        } else if task.state.is_terminal() {
            short_duration(task.finished_ts.max(task.started_ts) - task.started_ts)
        } else {
            short_duration(now - task.started_ts)
        };
        table.push(vec![
            Cell::plain(task.id.to_string()),
            Cell::plain(task.task_type.clone()),
            Cell::coloured(state, state_colour(task.state)),
            Cell::plain(exit),
            Cell::plain(age(now, task.created_ts)),
            Cell::plain(time),
            Cell::plain(task.tags.join(", ")),
        ]);
    }
    table
}

/// The task's JSON fields as text for `--template`: lists joined by commas, objects as JSON.
fn template_fields(task: &Value) -> BTreeMap<String, String> {
    let Some(object) = task.as_object() else {
        return BTreeMap::new();
    };
    object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_back_from_now() {
        let before = now();
        let when = parse_when("2h", "--since").unwrap();
        assert!((before - 7200..=now() - 7200).contains(&when));
        assert_eq!(parse_when("2024-05-01", "--since").unwrap(), 1_714_521_600);
    }

    #[test]
    fn a_bad_time_lists_the_forms_and_ages() {
        let error = parse_when("soonish", "--since").unwrap_err().to_string();
        assert!(error.starts_with("--since"), "{error}");
        assert!(error.contains("2h"), "{error}");
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
