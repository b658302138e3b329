//! The input-size options shared by commands that size a model's input (`flops`,
//! `bench model`): text tokens, regions or image size, on top of the config's defaults.

use clap::Args;

use crate::error::{Error, Result};
use crate::flops::{FlopInput, VisualInput};
use crate::model::config::ModelConfig;

/// Text length and visual input size.
#[derive(Debug, Args)]
pub struct InputSizeArgs {
    /// Text tokens per example (default: 20 for dual-stream, 40 for single-stream).
    #[arg(long, value_name = "T")]
    pub text_len: Option<usize>,
    /// Regions per image of a dual-stream model (default: the config's, 36 for LXMERT).
    #[arg(long, value_name = "R", conflicts_with = "image_size")]
    pub regions: Option<usize>,
    /// Image size of a single-stream model: S (square) or HxW (default: the config's).
    #[arg(long, value_name = "S|HxW")]
    pub image_size: Option<String>,
}

/// Parses `S` or `HxW`.
fn parse_image_size(text: &str) -> Result<VisualInput> {
    let bad = || {
        Error::invalid(format!(
            "--image-size {text:?}: expected S or HxW in pixels"
        ))
    };
    let (h, w) = match text.split_once(['x', 'X']) {
        Some((h, w)) => (h, w),
        None => (text, text),
    };
    Ok(VisualInput::Image {
        height: h.trim().parse().map_err(|_| bad())?,
        width: w.trim().parse().map_err(|_| bad())?,
    })
}

impl InputSizeArgs {
    /// The config's default input with `batch` examples and these options applied.
    pub fn resolve(&self, config: &ModelConfig, batch: usize) -> Result<FlopInput> {
        let mut input = FlopInput::default_for(config);
        input.batch = batch;
        if let Some(t) = self.text_len {
            input.text_len = t;
        }
        if let Some(r) = self.regions {
            input.visual = VisualInput::Regions(r);
        }
        if let Some(s) = &self.image_size {
            input.visual = parse_image_size(s)?;
        }
        Ok(input)
    }
}

/// `batch B, T text tokens, R regions | H×W image`.
pub fn describe(input: &FlopInput) -> String {
    format!(
        "batch {}, {} text tokens, {}",
        input.batch,
        input.text_len,
        match input.visual {
            VisualInput::Regions(r) => format!("{r} regions"),
            VisualInput::Image { height, width } => format!("{height}×{width} image"),
        }
    )
}
