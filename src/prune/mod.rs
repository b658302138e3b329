//! Pruning (Si et al. 2023, plus block and 2:4 granularity): sparsity allocation,
//! one-shot magnitude pruning, trainable masks, the per-matrix sparse format choice, the
//! pruned checkpoint and its report.
//!
//! Flow: [`Allocation::targets`] → [`magnitude_prune`] (a [`MaskSet`]) → optionally
//! [`attach_masks`] + training ([`reset_thresholds`] every t_m steps) + [`finalize`] →
//! [`choose_formats`] → [`MaskSet::apply`] → [`export_pruned`] / [`PruneReport`].
//! [`prune_run`] runs that whole flow from a trained run to a pruned run directory;
//! [`search`] compares modality allocations.

mod allocation;
mod export;
mod format_choice;
mod granularity;
mod magnitude;
mod mask_training;
mod masks;
mod pipeline;
mod report;
mod search;

pub use allocation::{Allocation, MatrixTarget};
pub use export::{export_pruned, load_checkpoint, load_pruned, MatrixRecord, SPARSITY_FILE};
pub use format_choice::{choose_formats, CostModel, FormatChoice};
pub use granularity::Granularity;
pub use magnitude::magnitude_prune;
pub use mask_training::{
    attach_masks, finalize, mask_training_frozen, reset_thresholds, ALPHA, THRESHOLD,
};
pub use masks::{is_embedding_table, matrix_shape, MaskEntry, MaskSet, MASKS_FILE};
pub use pipeline::{
    check_out, open_input, outcome_json, outcome_markdown, prune_checkpoint, prune_run, run_name,
    Finetune, Method, PruneOptions, PruneOutcome, DEFAULT_EPOCHS, DEFAULT_FINETUNE_LR,
    DEFAULT_MASK_LR, REPORT_JSON, REPORT_MD, RESET_EVERY,
};
pub use report::{GroupRow, MatrixRow, PruneReport};
pub use search::{
    search, search_rows, SearchResult, SearchRow, Sensitivity, AUTO_STEP, SEARCH_HEADER,
    SENSITIVITY_LEVELS,
};
