//! The `sparsevlp` binary: parses arguments, runs the command, and turns errors into a
//! message on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use sparsevlp::cli::{run, Cli};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
