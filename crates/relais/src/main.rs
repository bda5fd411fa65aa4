//! `relais`: the command-line entry point of the Relais integration engine.
//!
//! The binary stays thin: every subcommand parses its arguments and hands over to a library
//! crate. Exit codes are stable so that scripts and supervisors can rely on them.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
