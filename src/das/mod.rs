//! DAS, dynamic architecture skipping (Wu et al., NeurIPS 2023): a learned policy over
//! the skippable layers ([`policy`]), the search schedule over a training environment
//! ([`search`]), its stored result `das.json` ([`record`]) and the adapter layouts of the
//! search and final models ([`adapters`]).
//!
//! [`pipeline`] runs all of it on a trained checkpoint (search, then training of the
//! skipped model); by hand: build the model, [`adapters::prepare_search_model`], implement
//! [`search::SearchEnv`] (each call sets the model's skipped layers with
//! [`crate::model::vqa::VqaModel::set_skipped_layers`] before its forward pass), run
//! [`search::run_search`], save the [`record::DasRecord`] into the run; then either
//! finalize the search model with
//! [`crate::model::vqa::VqaModel::keep_skip_adapters`] or restart from the pre-trained
//! weights with [`adapters::apply_skips`], and train with
//! [`crate::model::vqa::VqaModel::das_frozen_params`] frozen.

pub mod adapters;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod report;
pub mod search;
