//! Benchmark sweeps shared by `cargo bench` and `sparsevlp bench`: the case lists, the
//! timer (median of repeated runs after warm-up), and result rows that become the CSV,
//! markdown and SVG reports. Ratios (speedup over dense, GFLOP/s) are always formed from
//! measurements taken in the same run.

pub mod attention;
pub mod model;
pub mod report;
pub mod skip;
pub mod sparse;
mod sparse_gpu;
mod timing;
pub mod train_step;

pub use timing::{measure, Timing};
