//! `sparsevlp forward`: runs a Hugging Face checkpoint directory on named input tensors
//! and writes the answer logits.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint::{load_input_tensors, save_tensors};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::hf_checkpoint::HfCheckpoint;

use crate::nn::{Mode, Module};
use crate::tensor::DType;

/// Options of `sparsevlp forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// A checkpoint directory: config.json + model.safetensors of an HF
    /// LxmertForQuestionAnswering or ViltForQuestionAnswering.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// A safetensors file of inputs named as transformers names them. LXMERT:
    /// input_ids, visual_feats, visual_pos [, attention_mask, token_type_ids,
    /// visual_attention_mask]; ViLT: input_ids, pixel_values [B, C, H, W] [,
    /// attention_mask, token_type_ids, pixel_mask [B, H, W]]. Ids and masks may be
    /// integers.
    #[arg(long, value_name = "IN.safetensors")]
    pub inputs: PathBuf,
    /// Where to write the logits [B, answers] (f32, under the name `logits`).
    #[arg(long, value_name = "OUT.safetensors")]
    pub out: PathBuf,
    /// Where to run: cpu, cuda[:N], emu (the CUDA emulator) or auto (CUDA device 0 when
    /// one is usable, else the CPU); the logits are written from the host either way.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
}

/// Runs `sparsevlp forward`.
pub fn run(args: &ForwardArgs) -> Result<()> {
    let device = Device::parse(&args.device)?;
    let mut checkpoint = HfCheckpoint::load(&args.checkpoint)?;
    if device.is_gpu() {
        checkpoint.model.to_device(device)?;
    }
    let inputs = load_input_tensors(&args.inputs)?.into_iter().collect();
    let logits = checkpoint
        .model
        .forward_named(&inputs, Mode::Eval)
        .map_err(|e| Error::invalid(format!("{}: {e}", args.inputs.display())))?;
    save_tensors(
        &args.out,
        &[("logits".to_string(), logits.clone())],
        DType::F32,
    )?;
    println!(
        "{}: logits {} written to {}",
        args.checkpoint.display(),
        logits.shape(),
        args.out.display()
    );
    Ok(())
}
