//! `sparsevlp flops`: analytic FLOPs and parameters per module of a model for one input
//! size, dense and effective, as a table and JSON.

use std::path::{Path, PathBuf};

use clap::Args;

use super::input_size::{describe, InputSizeArgs};
use crate::error::{Error, Result};
use crate::flops::{count, Sparsity};
use crate::model::config::{ModelConfig, PRESETS};
use crate::model::hf_checkpoint::HfCheckpoint;

/// Options of `sparsevlp flops`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").args(["model", "config", "checkpoint"])))]
pub struct FlopsArgs {
    /// A model preset (tiny-dual, tiny-single, lxmert-base, vilt-b32).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// A model config: a sparsevlp JSON config or a Hugging Face config.json.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A Hugging Face checkpoint directory: its config.json is read, and the skipped
    /// layers and adapters of its adapters.safetensors, if any, are counted. The
    /// sparsity of stored weights is not read yet (use --sparsity).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 1, value_name = "B")]
    pub batch: usize,
    /// Text length and visual input size.
    #[command(flatten)]
    pub size: InputSizeArgs,
    /// Effective-FLOP knobs: a JSON file with `weight_density`, `attention_density`
    /// (name prefix → density), `skipped` (layer names), `skip_adapter` (bottleneck) and
    /// `parallel_adapters` (layer name → bottleneck).
    #[arg(long, value_name = "FILE")]
    pub sparsity: Option<PathBuf>,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Reads a config file: a Hugging Face config.json when it has `model_type`.
fn load_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    if value.get("model_type").is_some() {
        ModelConfig::from_hf_config(path)
    } else {
        ModelConfig::from_json_file(path)
    }
}

/// `sparsity` with the skipped layers and adapters of the checkpoint `dir`; an error
/// when both describe skipped layers or adapters.
fn with_checkpoint_adapters(sparsity: Sparsity, dir: &Path) -> Result<Sparsity> {
    let stored = HfCheckpoint::read_adapter_sparsity(dir)?;
    if stored == Sparsity::default() {
        return Ok(sparsity);
    }
    if !sparsity.skipped.is_empty()
        || sparsity.skip_adapter.is_some()
        || !sparsity.parallel_adapters.is_empty()
    {
        return Err(Error::invalid(format!(
            "flops: {} has adapters; --sparsity must not name skipped layers or adapters too",
            dir.display()
        )));
    }
    Ok(Sparsity {
        skipped: stored.skipped,
        skip_adapter: stored.skip_adapter,
        parallel_adapters: stored.parallel_adapters,
        ..sparsity
    })
}

/// Runs `sparsevlp flops`.
pub fn run(args: &FlopsArgs) -> Result<()> {
    let (name, config) = match (&args.model, &args.config, &args.checkpoint) {
        (Some(m), _, _) => (m.clone(), ModelConfig::preset(m)?),
        (None, Some(p), _) => (p.display().to_string(), load_config(p)?),
        (None, None, Some(dir)) => (dir.display().to_string(), HfCheckpoint::read_config(dir)?),
        (None, None, None) => {
            return Err(Error::invalid(format!(
                "flops: give --model ({}), --config FILE or --checkpoint DIR",
                PRESETS.join(", ")
            )))
        }
    };
    let input = args.size.resolve(&config, args.batch)?;
    let sparsity = match &args.sparsity {
        None => Sparsity::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            serde_json::from_str(&text)
                .map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?
        }
    };
    let sparsity = match &args.checkpoint {
        Some(dir) => with_checkpoint_adapters(sparsity, dir)?,
        None => sparsity,
    };
    let report = count(&name, &config, &input, &sparsity)?;
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| Error::invalid(format!("cannot encode the report: {e}")))?;
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{json}\n")).map_err(|source| Error::Io {
            path: out.clone(),
            source,
        })?;
    }
    if args.json {
        println!("{json}");
    } else {
        println!("{name}: {}", describe(&input));
        print!("{}", report.table());
    }
    Ok(())
}
