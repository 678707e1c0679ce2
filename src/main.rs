//! The `davsync` binary: argument parsing and terminal output around the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
