//! Training: the debiasing objectives ([`loss`]), and — built on them — the optimizer,
//! the trainer, evaluation and resumable checkpoints.

pub mod loss;
