//! Task types: `blanket types [ls|show NAME]` and the old `task-validate` ask the coordinator;
//! `blanket validate FILE...` checks files offline with the same parser the coordinator uses,
//! printing each problem as `file:line:column: message`, like a compiler.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use blanket_core::task_type::parse_type;
use blanket_core::wire::TaskType;
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::client::{Client, ClientArgs, http_status};
use crate::output::{Cell, Colour, Fit, Table, colour_on_stdout, labelled, paint, table_width};

// `blanket types`: with no action, the list.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TypesArgs {
    #[command(subcommand)]
    action: Option<TypesAction>,
    #[command(flatten)]
    list: TypesListArgs,
}

// What `blanket types` does.
#[derive(Subcommand, Debug)]
pub enum TypesAction {
    /// List the task types, broken files with their error (the default)
    Ls(TypesListArgs),
    /// Show one task type: its command, variables and file
    Show(TypesShowArgs),
}

// `blanket types ls`.
#[derive(Args, Debug)]
pub struct TypesListArgs {
    /// Print only names, one a line
    #[arg(short, long)]
    quiet: bool,
    /// Print the types as the coordinator's JSON
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket types show`.
#[derive(Args, Debug)]
pub struct TypesShowArgs {
    /// The type's name
    #[arg(value_name = "NAME")]
    name: String,
    /// Print the type as the coordinator's JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Task type files (*.toml), or folders of them
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Print the results as JSON: one object per file
    #[arg(long)]
    json: bool,
    /// Print only the problems
    #[arg(short, long)]
    quiet: bool,
}

// `blanket task-validate`, the old CLI's check of the coordinator's types.
#[derive(Args, Debug)]
pub struct TaskValidateArgs {
    /// Only this type
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `blanket types`.
///
/// # Errors
/// An unknown type (the message lists the known ones), or a failed request.
pub async fn run(args: TypesArgs) -> anyhow::Result<ExitCode> {
    match args.action.unwrap_or(TypesAction::Ls(args.list)) {
        TypesAction::Ls(list) => list_types(list).await,
        TypesAction::Show(show) => show_type(show).await,
    }
}

/// Runs `blanket validate`: offline, exit code 1 when any file is broken.
///
/// # Errors
/// A folder that cannot be listed.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.files {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing the folder {}", path.display()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.extension()
                        .is_some_and(|extension| extension == "toml")
                })
                .collect();
            found.sort();
            if found.is_empty() {
                eprintln!("{}: no *.toml files in this folder", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut broken = 0usize;
    let mut results = Vec::new();
    for file in &files {
        let outcome = check_file(file);
        if outcome.is_err() {
            broken += 1;
        }
        match (&outcome, args.json) {
            (_, true) => results.push(outcome_json(file, &outcome)),
            (Ok(name), false) => {
                if !args.quiet {
                    println!("{}: ok (task type {name})", file.display());
                }
            }
            (Err(problem), false) => eprintln!("{problem}"),
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&results).context("writing JSON")?
        );
    } else if !args.quiet && files.len() > 1 {
        eprintln!(
            "{} file{} checked, {broken} broken",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(if broken > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs `blanket task-validate`: the coordinator's types, broken ones with their error.
///
/// # Errors
/// A name the coordinator does not know, or a failed request.
pub async fn task_validate(args: TaskValidateArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let mut types: Vec<TaskType> = client
        .get_json("/task_type/")
        .await
        .context("listing the task types")?;
    if let Some(name) = &args.name {
        if !types.iter().any(|task_type| &task_type.name == name) {
            let known: Vec<&str> = types
                .iter()
                .map(|task_type| task_type.name.as_str())
                .collect();
            anyhow::bail!(
                "unknown task type {name:?}: known types are {}",
                known.join(", ")
            );
        }
        types.retain(|task_type| &task_type.name == name);
    }
    let mut broken = 0usize;
    let mut results = Vec::new();
    for task_type in &types {
        let problem = task_type.error.as_ref().map(|error| {
            let line = task_type
                .line
                .map(|line| format!(":{line}"))
                .unwrap_or_default();
            format!("{}{line}: {error}", task_type.config_file)
        });
        if problem.is_some() {
            broken += 1;
        }
        if args.json {
            results.push(json!({
                "name": task_type.name,
                "file": task_type.config_file,
                "ok": problem.is_none(),
                "error": task_type.error,
                "line": task_type.line,
            }));
        } else {
            match problem {
                Some(problem) => eprintln!("{problem}"),
                None => println!("{}: ok", task_type.name),
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&results).context("writing JSON")?
        );
    }
    Ok(if broken > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The type's name, or the problem as `file:line:column: message`.
fn check_file(file: &Path) -> Result<String, String> {
    let source = std::fs::read_to_string(file)
        .map_err(|error| format!("{}: cannot read the file: {error}", file.display()))?;
    parse_type(file, &source, 0)
        .map(|loaded| loaded.spec.name)
        .map_err(|error| error.to_string())
}

fn outcome_json(file: &Path, outcome: &Result<String, String>) -> serde_json::Value {
    match outcome {
        Ok(name) => json!({"file": file.display().to_string(), "ok": true, "name": name}),
        Err(problem) => {
            json!({"file": file.display().to_string(), "ok": false, "error": problem})
        }
    }
}

async fn list_types(args: TypesListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    if args.json {
        let body = client
            .get_bytes(client.request(Method::GET, "/task_type/"))
            .await
            .context("listing the task types")?;
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let types: Vec<TaskType> = client
        .get_json("/task_type/")
        .await
        .context("listing the task types")?;
    if args.quiet {
        for task_type in &types {
            println!("{}", task_type.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if types.is_empty() {
        eprintln!("no task types: add *.toml files to the coordinator's types folder");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec![
        ("NAME", Fit::Ellipsis(10)),
        ("TAGS", Fit::Ellipsis(4)),
        ("TIMEOUT", Fit::Fixed),
        ("NEEDS", Fit::Ellipsis(5)),
        ("DESCRIPTION", Fit::Ellipsis(10)),
    ]);
    for task_type in &types {
        if let Some(error) = &task_type.error {
            table.push(vec![
                Cell::plain(task_type.name.clone()),
                Cell::plain(""),
                Cell::plain(""),
                Cell::plain(""),
                Cell::coloured(format!("broken: {error}"), Colour::Red),
            ]);
            continue;
        }
        let needs: Vec<&str> = task_type
            .environment
            .required
            .iter()
            .map(|variable| variable.name.as_str())
            .collect();
        let description = task_type
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        table.push(vec![
            Cell::plain(task_type.name.clone()),
            Cell::plain(task_type.tags.join(", ")),
            Cell::plain(format!("{}s", task_type.timeout)),
            Cell::plain(if needs.is_empty() {
                "-".to_owned()
            } else {
                needs.join(", ")
            }),
            Cell::plain(description),
        ]);
    }
    print!("{}", table.render(table_width(), colour_on_stdout()));
    Ok(ExitCode::SUCCESS)
}

async fn show_type(args: TypesShowArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let path = format!("/task_type/{}", encode_segment(&args.name));
    if args.json {
        let body = client
            .get_bytes(client.request(Method::GET, &path))
            .await
            .with_context(|| format!("reading task type {:?}", args.name))?;
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let task_type: TaskType = match client.get_json(&path).await {
        Ok(task_type) => task_type,
        Err(error) if http_status(&error) == Some(StatusCode::NOT_FOUND) => {
            let types: Vec<TaskType> = client
                .get_json("/task_type/")
                .await
                .context("listing the task types")?;
            let known: Vec<&str> = types.iter().map(|known| known.name.as_str()).collect();
            anyhow::bail!(
                "unknown task type {:?}: known types are {}",
                args.name,
                known.join(", ")
            );
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading task type {:?}", args.name));
        }
    };
    let colour = colour_on_stdout();
    let bold = |text: &str| paint(text, Colour::Bold, colour);
    let mut out = labelled("name", &task_type.name, 13, colour);
    if let Some(error) = &task_type.error {
        out.push_str(&labelled(
            "broken",
            &paint(error, Colour::Red, colour),
            13,
            colour,
        ));
    }
    if !task_type.description.is_empty() {
        let description = task_type.description.split_whitespace().collect::<Vec<_>>();
        out.push_str(&labelled("description", &description.join(" "), 13, colour));
    }
    out.push_str(&labelled("tags", &task_type.tags.join(", "), 13, colour));
    out.push_str(&labelled(
        "timeout",
        &format!("{}s", task_type.timeout),
        13,
        colour,
    ));
    out.push_str(&labelled("executor", &task_type.executor, 13, colour));
    out.push_str(&labelled("file", &task_type.config_file, 13, colour));
    out.push_str(&format!("{}\n", bold("command")));
    for line in task_type.command.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    let environment = &task_type.environment;
    if !environment.required.is_empty() {
        out.push_str(&format!("{} (give with -e NAME=VALUE)\n", bold("required")));
        for variable in &environment.required {
            out.push_str(&format!(
                "  {}{}\n",
                variable.name,
                describe_variable(&variable.description, "")
            ));
        }
    }
    if !environment.default.is_empty() {
        out.push_str(&format!("{}\n", bold("defaults")));
        for variable in &environment.default {
            out.push_str(&format!(
                "  {}={}{}\n",
                variable.name,
                variable.value,
                describe_variable(&variable.description, "")
            ));
        }
    }
    if !environment.optional.is_empty() {
        out.push_str(&format!("{}\n", bold("optional")));
        for variable in &environment.optional {
            out.push_str(&format!(
                "  {}{}\n",
                variable.name,
                describe_variable(&variable.description, &variable.value)
            ));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn describe_variable(description: &str, example: &str) -> String {
    match (description.is_empty(), example.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(": {description}"),
        (true, false) => format!(" (e.g. {example})"),
        (false, false) => format!(": {description} (e.g. {example})"),
    }
}

/// A type name as one URL path segment.
fn encode_segment(name: &str) -> String {
    name.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_is_reported_with_line_and_column() {
        let dir = std::env::temp_dir().join(format!("blanket-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("broken.toml");
        std::fs::write(&file, "description = \"x\"\ncommand = \n").unwrap();
        let problem = check_file(&file).unwrap_err();
        assert!(
            problem.starts_with(&format!("{}:2:", file.display())),
            "{problem}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_are_percent_encoded_in_paths() {
        assert_eq!(encode_segment("echo_task"), "echo_task");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
