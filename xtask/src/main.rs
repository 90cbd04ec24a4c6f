//! `cargo xtask`: the project's own commands, so a fresh machine needs nothing but a Rust toolchain.
//! `run` installs what is missing and starts the app; `test` runs every check CI runs, in CI's order;
//! `bench` runs every benchmark of the project against its goals; `deb` packages the desktop app.
//! Deliberately std + anyhow only, so it compiles in seconds before anything else is built.

mod apt;
mod bench;
mod deb;
mod process;
mod proof;
mod run;
mod test;
mod toolchain;
mod workspace;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  run [-- ARGS]   install missing system packages, build the release binary
                  and start `blanket serve ARGS`
  test            install what the tests need, then run fmt, clippy, the
                  dependency-direction check, the build and every test suite
  bench [--quick] [--with-pueue]
                  build in release mode, run every benchmark (server, workers,
                  CLI, web UI, desktop) and write docs/benchmarks.md
                  (--quick: a few-minute smoke run, report in target/bench;
                  --with-pueue: also measure pueue, installing it if missing)
  proof [--full]  run the reliability proof (crash loop, claims, lost workers,
                  slow SSE clients, disk trouble) with CI's small counts, or
                  the full ones; needs root for the disk-trouble tests
  deb             build the desktop app's .deb with the dist profile
                  (target/dist/bundle/deb; see docs/desktop.md)
  help            print this text

See docs/development.md.
";

fn main() -> ExitCode {
    match run_command() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Printed by hand rather than by returning the error from main:
            // with RUST_BACKTRACE set, anyhow would add a backtrace of xtask
            // itself, which buries the message and says nothing useful.
            eprintln!("\nxtask: error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run_command() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    let command = match &command {
        Some(command) => Some(
            command
                .to_str()
                .with_context(|| format!("command {command:?} is not valid UTF-8\n\n{USAGE}"))?,
        ),
        None => None,
    };
    match command {
        Some("run") => run::run(app_args(&rest)),
        Some("test") => {
            if let Some(extra) = rest.first() {
                bail!(
                    "`cargo xtask test` takes no arguments, got {extra:?} \
                     (to run one suite alone, see docs/development.md)"
                );
            }
            test::test()
        }
        Some("bench") => bench::bench(&rest),
        Some("proof") => proof::proof(&rest),
        Some("deb") => {
            if let Some(extra) = rest.first() {
                bail!("`cargo xtask deb` takes no arguments, got {extra:?}");
            }
            deb::deb().map(drop)
        }
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
        None => bail!("no command given\n\n{USAGE}"),
    }
}

/// The arguments meant for the app: `cargo xtask run -- --port 9000` reaches
/// us with the `--` still in front, which `blanket serve` would reject.
fn app_args(rest: &[OsString]) -> &[OsString] {
    match rest.split_first() {
        Some((first, tail)) if first == "--" => tail,
        _ => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn app_args_drops_one_leading_separator() {
        assert_eq!(app_args(&os(&["--", "--port", "1"])), os(&["--port", "1"]));
        assert_eq!(app_args(&os(&["--port", "1"])), os(&["--port", "1"]));
        assert_eq!(app_args(&os(&["--", "--"])), os(&["--"]));
        assert!(app_args(&[]).is_empty());
    }
}
