//! Training: the debiasing objectives ([`loss`]), the optimizer ([`optim`],
//! [`schedule`]), the batch → model bridge ([`bridge`]), evaluation
//! ([`evaluate`](mod@evaluate)), the trainer with its log and resumable run directories
//! ([`trainer`], [`run_dir`]), what a run derives from its dataset ([`setup`]) and how a
//! fresh run starts ([`launch`]).

pub mod bridge;
pub mod evaluate;
pub mod launch;
pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod schedule;
pub mod setup;
pub mod trainer;

pub use bridge::{backward_batch, batch_loss, forward_batch};
pub use evaluate::{evaluate, predict};
pub use launch::{start_run, RunSpec};
pub use optim::{OptimConfig, Optimizer, StepStats};
pub use schedule::Schedule;
pub use setup::load_data;
pub use trainer::{StepHook, StepRecord, TrainOptions, TrainSummary, Trainer};
