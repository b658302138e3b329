//! `sparsevlp demo` and `sparsevlp reproduce`: the whole system on the built-in synthetic
//! dataset — train with BCE and the debiasing losses, mask-train sparse subnetworks,
//! skip layers with DAS (also on a pruned model), then measure every model (parameters,
//! FLOPs, forward latency in one run, accuracy per split and answer type) into one table,
//! a markdown report, CSV/JSON and two SVG plots.
//!
//! [`DemoPlan::demo`] is the ≤ 10-minute tour (one seed); [`DemoPlan::reproduce`] is the
//! full grid (three seeds, more sparsities and skip counts); [`DemoPlan::compression`] is
//! the compression table (three pruning pipelines, uniform and modality-specific);
//! [`DemoPlan::debias`] is the out-of-distribution table (BCE, LMH, LPF, three seeds).

mod measure;
mod plan;
mod report;
mod stages;

pub use measure::{forward_latency_ms, model_facts, ModelFacts, EVAL_SPLITS};
pub use plan::{pruned_name, skipped_name, AllocationRule, DemoPlan, PrunePair};
pub use report::{
    frontier_plot, gap_summary, rows, sparsity_plot, write_report, Chain, Entry, Family, HEADER,
};
pub use stages::run_plan;
