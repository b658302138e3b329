//! The `sparsevlp` binary: parses arguments, runs the command, and turns errors into a
//! message on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use sparsevlp::cli::{run, Cli};

fn main() -> ExitCode {
    // Exit quietly when stdout is closed early (`sparsevlp info | head`), like other
    // command-line tools, instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
