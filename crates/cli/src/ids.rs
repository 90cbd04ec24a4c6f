//! Task and worker ids as a person types them: the whole 24 hex characters, or a unique
//! prefix of at least 6, like git. A task prefix's leading hex digits are its creation second,
//! so it is looked up in that time window only, never by listing every task.

use std::io::IsTerminal;

use anyhow::Context;
use blanket_core::wire::{Task, Worker};
use blanket_core::{TaskId, WorkerId};
use reqwest::Method;

use crate::client::Client;
use crate::output::worker_status;

/// The shortest prefix accepted.
pub const MIN_PREFIX: usize = 6;

/// How many tasks one page of the window lookup asks for.
const PAGE: usize = 10_000;

/// How many candidates an ambiguous prefix lists.
const SHOWN_CANDIDATES: usize = 10;

/// The id `text` names: a whole id as is, a prefix looked up on the coordinator.
///
/// # Errors
/// A malformed or too short prefix, none or several tasks starting with it, or a failed
/// request.
pub async fn resolve_task(client: &Client, text: &str) -> anyhow::Result<TaskId> {
    let prefix = check_prefix(text, "task")?;
    if prefix.len() == 24 {
        return prefix
            .parse()
            .with_context(|| format!("reading task id {text:?}"));
    }
    let (first, last) = window(&prefix);
    let mut matches: Vec<Task> = Vec::new();
    let mut total = 0usize;
    let mut offset = 0usize;
    loop {
        let request = client.request(Method::GET, "/task/").query(&[
            ("createdAfter", first.to_string()),
            // `createdBefore` has been read both as inclusive and exclusive: one second more
            // is harmless, since candidates are matched on the prefix below.
            ("createdBefore", (last + 1).to_string()),
            ("limit", PAGE.to_string()),
            ("offset", offset.to_string()),
        ]);
        let page: Vec<Task> = client
            .read_json(client.send(request).await?)
            .await
            .with_context(|| format!("looking up the tasks whose id starts with {prefix}"))?;
        let count = page.len();
        for task in page {
            if task.id.to_string().starts_with(&prefix) {
                total += 1;
                if matches.len() < SHOWN_CANDIDATES {
                    matches.push(task);
                }
            }
        }
        if count < PAGE {
            break;
        }
        offset += count;
    }
    match (total, matches.as_slice()) {
        (1, [task]) => Ok(task.id),
        (0, _) => anyhow::bail!(
            "no task id starts with {prefix}: `blanket ps` lists the tasks (a deleted task is gone)"
        ),
        (_, candidates) => {
            let listed: Vec<String> = candidates
                .iter()
                .map(|task| format!("  {} {} {}", task.id, task.task_type, task.state))
                .collect();
            let more = if total > candidates.len() {
                format!("\n  ... and {} more", total - candidates.len())
            } else {
                String::new()
            };
            anyhow::bail!(
                "task id prefix {prefix} is ambiguous: {total} tasks start with it; give more \
                 characters:\n{}{more}",
                listed.join("\n")
            )
        }
    }
}

/// The ids `texts` name, resolved in order; stops at the first that fails.
///
/// # Errors
/// As [`resolve_task`].
pub async fn resolve_tasks(client: &Client, texts: &[String]) -> anyhow::Result<Vec<TaskId>> {
    let mut ids = Vec::with_capacity(texts.len());
    for text in texts {
        ids.push(resolve_task(client, text).await?);
    }
    Ok(ids)
}

/// The worker `text` names: a whole id, or a unique prefix among the coordinator's workers.
///
/// # Errors
/// A malformed or too short prefix, none or several workers starting with it, or a failed
/// request.
pub async fn resolve_worker(client: &Client, text: &str) -> anyhow::Result<WorkerId> {
    let prefix = check_prefix(text, "worker")?;
    if prefix.len() == 24 {
        return prefix
            .parse()
            .with_context(|| format!("reading worker id {text:?}"));
    }
    let workers: Vec<Worker> = client
        .get_json("/worker/")
        .await
        .context("listing the workers to find the id prefix")?;
    let candidates: Vec<&Worker> = workers
        .iter()
        .filter(|worker| worker.id.to_string().starts_with(&prefix))
        .collect();
    match candidates.as_slice() {
        [worker] => Ok(worker.id),
        [] => {
            anyhow::bail!("no worker id starts with {prefix}: `blanket workers` lists the workers")
        }
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|worker| format!("  {} {}", worker.id, worker_status(worker.status)))
                .collect();
            anyhow::bail!(
                "worker id prefix {prefix} is ambiguous: {} workers start with it; give more \
                 characters:\n{}",
                several.len(),
                listed.join("\n")
            )
        }
    }
}

/// The ids given on the command line, or, when there are none and standard input is not a
/// terminal, the whitespace-separated words of standard input (so `blanket ps -q | blanket
/// cancel` works like `xargs`). An empty list means there was nothing to do.
///
/// # Errors
/// No ids and standard input is a terminal; standard input cannot be read.
pub fn ids_or_stdin(ids: Vec<String>, verb: &str) -> anyhow::Result<Vec<String>> {
    if !ids.is_empty() {
        return Ok(ids);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!(
            "no task id given: name the tasks to {verb} (`blanket ps -q` lists ids), or pipe \
             them in"
        );
    }
    let text = std::io::read_to_string(stdin).context("reading task ids from standard input")?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// The lower-cased prefix, checked for length and characters.
fn check_prefix(text: &str, kind: &str) -> anyhow::Result<String> {
    let prefix = text.trim().to_ascii_lowercase();
    if !prefix.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        anyhow::bail!(
            "{kind} id {text:?} is not hexadecimal: give the 24 hex characters of the id, or \
             at least its first {MIN_PREFIX} (`blanket {}` lists them)",
            if kind == "task" { "ps" } else { "workers" }
        );
    }
    if prefix.len() > 24 {
        anyhow::bail!("{kind} id {text:?} is longer than 24 hex characters: check it");
    }
    if prefix.len() < MIN_PREFIX {
        anyhow::bail!(
            "{kind} id {text:?} is too short: give at least its first {MIN_PREFIX} hex \
             characters (`blanket {}` lists them)",
            if kind == "task" { "ps" } else { "workers" }
        );
    }
    Ok(prefix)
}

/// The first and last creation second a task id starting with `prefix` can have: its first 8
/// hex digits are the second, so missing digits span a window of at most 256 seconds.
fn window(prefix: &str) -> (i64, i64) {
    let seconds_digits: String = prefix.chars().take(8).collect();
    let low = format!("{seconds_digits:0<8}");
    let high = format!("{seconds_digits:f<8}");
    let parse = |digits: &str| i64::from(u32::from_str_radix(digits, 16).unwrap_or(0));
    (parse(&low), parse(&high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_of_eight_or_more_digits_names_one_second() {
        assert_eq!(window("5f5e1000aa"), (0x5f5e_1000, 0x5f5e_1000));
        assert_eq!(window("5f5e1000"), (0x5f5e_1000, 0x5f5e_1000));
    }

    #[test]
    fn a_six_digit_prefix_spans_256_seconds() {
        assert_eq!(window("5f5e10"), (0x5f5e_1000, 0x5f5e_10ff));
    }

    #[test]
    fn short_or_non_hex_prefixes_say_what_to_give() {
        let error = check_prefix("abc", "task").unwrap_err().to_string();
        assert!(error.contains("at least its first 6"), "{error}");
        let error = check_prefix("xyz123", "task").unwrap_err().to_string();
        assert!(error.contains("not hexadecimal"), "{error}");
        assert_eq!(check_prefix(" ABCDEF ", "task").unwrap(), "abcdef");
    }
}
