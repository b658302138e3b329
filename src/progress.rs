//! A progress line on stderr for long work (benchmark sweeps, training, pruning): done/total,
//! a bar, elapsed time, ETA and the current item. On a terminal it redraws one line; when
//! stderr is a file or pipe (CI logs) it prints a plain line per step instead, so logs stay
//! readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Width of the bar in characters.
const BAR: usize = 24;

/// Progress over a known number of steps.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    start: Instant,
    terminal: bool,
}

/// `1m05s`-style duration.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Progress {
    /// Starts progress over `total` steps named `label`.
    pub fn new(label: impl Into<String>, total: usize) -> Progress {
        Progress {
            label: label.into(),
            total,
            done: 0,
            start: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// The status line after `done` of `total` steps, `elapsed` in, with `item` appended.
    fn line(&self, item: &str) -> String {
        let elapsed = self.start.elapsed();
        let frac = self.done as f64 / self.total.max(1) as f64;
        let filled = ((frac * BAR as f64).round() as usize).min(BAR);
        let eta = if self.done > 0 && self.done < self.total {
            let rest = elapsed.as_secs_f64() * (self.total - self.done) as f64 / self.done as f64;
            format!(" eta {}", format_duration(Duration::from_secs_f64(rest)))
        } else {
            String::new()
        };
        format!(
            "{} [{}{}] {}/{} {}{} {}",
            self.label,
            "=".repeat(filled),
            " ".repeat(BAR - filled),
            self.done,
            self.total,
            format_duration(elapsed),
            eta,
            item
        )
    }

    /// Marks one step done; `item` says what it was (shown on the line).
    pub fn step(&mut self, item: &str) {
        self.done = (self.done + 1).min(self.total);
        let line = self.line(item);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Ends the line (on a terminal) and returns the elapsed time.
    pub fn finish(self) -> Duration {
        if self.terminal {
            eprintln!();
        }
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_counts_bar_and_item() {
        let mut p = Progress::new("bench", 4);
        p.terminal = false;
        p.done = 2;
        let line = p.line("csr 90%");
        assert!(
            line.starts_with("bench [============            ] 2/4 "),
            "{line}"
        );
        assert!(
            line.contains(" eta ") && line.ends_with("csr 90%"),
            "{line}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(format_duration(Duration::from_secs(7260)), "2h01m");
    }
}
