//! The `blanket-desktop` binary: everything happens in `blanket_desktop::run`, so the shell
//! can be driven by tests on the mock runtime.

fn main() -> std::process::ExitCode {
    blanket_desktop::run()
}
