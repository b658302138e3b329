//! The benchmark timer: warm-up, then repeated runs until a time budget is spent (with a
//! minimum and maximum count), reporting the median and the minimum.

use std::time::{Duration, Instant};

use crate::error::Result;

/// Runs always made, however slow one is.
const MIN_REPS: usize = 5;
/// Runs never exceeded, however fast one is.
const MAX_REPS: usize = 1000;

/// Timings of one case, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median over the measured runs.
    pub median_s: f64,
    /// Fastest measured run.
    pub min_s: f64,
    /// Number of measured runs.
    pub reps: usize,
}

/// Times `f`: two warm-up calls (the first may allocate or fault pages in), then runs until
/// `budget` has passed (at least 5, at most 1000 runs). Stops at the first error.
pub fn measure(budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    f()?;
    f()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < MIN_REPS || (start.elapsed() < budget && times.len() < MAX_REPS) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(Timing {
        median_s: times[times.len() / 2],
        min_s: times[0],
        reps: times.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_at_least_five_runs_and_orders_min_before_median() {
        let mut calls = 0;
        let t = measure(Duration::ZERO, || {
            calls += 1;
            std::thread::sleep(Duration::from_micros(200 * (calls % 3)));
            Ok(())
        })
        .unwrap();
        assert_eq!(t.reps, 5);
        assert_eq!(calls, 7);
        assert!(t.min_s <= t.median_s && t.min_s > 0.0);
    }

    #[test]
    fn stops_at_the_first_error() {
        let mut calls = 0;
        let r = measure(Duration::from_secs(1), || {
            calls += 1;
            if calls == 4 {
                Err(crate::Error::invalid("boom"))
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
        assert_eq!(calls, 4);
    }
}
