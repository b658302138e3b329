//! The built-in biased dataset (`sparsevlp data synth`): rendered scenes of coloured
//! shapes, questions of six VQA question types covering the three answer types, and four
//! splits — `train` and `test-id` with one answer distribution per question type (a
//! dominant answer; by default 90% of the yes/no questions of a type and 50% of the
//! others), `test-ood` where, VQA-CP style, each question type's dominant answer is a
//! different one, and `val`, by default with every answer of a type equally often so
//! that model selection rewards reading the image rather than the training prior. Written in the VQA-CP v2 JSON format with a `dataset.json` manifest, PNG
//! images and a region-feature file, so it loads through the same code as real data.
//!
//! Everything is a function of the seed: the same configuration writes the same bytes.
//! Layout of the output directory:
//!
//! ```text
//! dataset.json                                   manifest (+ generator facts)
//! vqacp_v2_{split}_{questions,annotations}.json  one pair per split
//! images/synth_{image_id:06}.png                 the scenes
//! features.safetensors                           region features + boxes (8 per image)
//! ```

mod plan;
mod questions;
mod render;
mod scene;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::rng::{seed_for, Rng};

use super::features::RegionFeatures;
use super::files::{file_error, io_error, read_json, write_atomically, write_json};
use super::vqa::{
    AnnotationRecord, AnswerRecord, ImageSourceSpec, Manifest, QuestionRecord, SplitFiles, MANIFEST,
};
use super::AnswerType;
use plan::{plan_split, PlannedImage, Skew};
use questions::{variants, Family};

/// The splits and their share of the questions; the first two and `test-id` share one
/// answer distribution, `test-ood` has the shifted one.
pub const SPLITS: [(&str, f64); 4] = [
    ("train", 0.6),
    ("val", 0.1),
    ("test-id", 0.15),
    ("test-ood", 0.15),
];

/// The out-of-distribution split's name.
pub const OOD_SPLIT: &str = "test-ood";

/// The validation split's name.
const VAL_SPLIT: &str = "val";

/// Chance that an annotator gives another answer of the same question family.
const DISAGREE: f64 = 0.04;
/// Chance that an annotator spells the answer differently ("two" for "2").
const VARIANT: f64 = 0.12;
/// Annotators per question, as in VQA.
const ANNOTATORS: usize = 10;

/// How to generate the dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// The seed everything derives from.
    pub seed: u64,
    /// Questions over all splits (at least 10).
    pub questions: usize,
    /// Share of the dominant answer of each number and "other" question type, in [0, 1].
    pub bias: f64,
    /// Share of the dominant answer of each yes/no question type, in [0, 1].
    pub yes_no_bias: f64,
    /// Side of the square PNG images (24 to 1024 pixels).
    pub image_size: usize,
    /// Most questions asked about one image (1 to 10).
    pub per_image: usize,
    /// Standard deviation of the noise on small objects' colour and shape features.
    pub small_noise: f64,
    /// Whether `val` has every answer of a question type equally often (else it follows
    /// the training distribution).
    pub balanced_val: bool,
}

impl Default for SynthConfig {
    /// Seed 0, 40 000 questions, dominant answers at 90% for yes/no question types and
    /// 50% for the others, a balanced `val`, 64-pixel images, up to 8 questions per image,
    /// no extra noise on small objects. Why these values: BENCHMARKS.md, "The
    /// out-of-distribution table".
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            questions: 40_000,
            bias: 0.5,
            yes_no_bias: 0.9,
            image_size: 64,
            per_image: 8,
            small_noise: 0.0,
            balanced_val: true,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// Number of images.
    pub images: usize,
    /// Questions per split, in split order.
    pub questions: Vec<(String, usize)>,
}

/// Questions per split for `total` questions: the shares of [`SPLITS`], rounded down,
/// with the rest going to `train`.
fn split_sizes(total: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = SPLITS
        .iter()
        .map(|(_, share)| (total as f64 * share) as usize)
        .collect();
    sizes[0] = total - sizes[1..].iter().sum::<usize>();
    sizes
}

impl SynthConfig {
    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid(format!("synthetic data: {msg}")));
        if self.questions < 10 {
            return bad(format!(
                "--questions {} must be at least 10",
                self.questions
            ));
        }
        if !(0.0..=1.0).contains(&self.bias) {
            return bad(format!("--bias {} must lie in [0, 1]", self.bias));
        }
        if !(0.0..=1.0).contains(&self.yes_no_bias) {
            return bad(format!(
                "--yes-no-bias {} must lie in [0, 1]",
                self.yes_no_bias
            ));
        }
        if !(24..=1024).contains(&self.image_size) {
            return bad(format!(
                "image size {} must lie in 24..=1024",
                self.image_size
            ));
        }
        if !(0.0..=10.0).contains(&self.small_noise) {
            return bad(format!(
                "--small-noise {} must lie in [0, 10]",
                self.small_noise
            ));
        }
        if !(1..=10).contains(&self.per_image) {
            return bad(format!(
                "questions per image {} must lie in 1..=10",
                self.per_image
            ));
        }
        Ok(())
    }
}

/// Writes the dataset into `out` (created if needed); `progress` hears about each phase.
pub fn generate(
    out: &Path,
    cfg: &SynthConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<SynthSummary> {
    cfg.validate()?;
    let mut rng = Rng::new(seed_for(cfg.seed, "dominant answers"));
    let mut in_dist = Vec::new();
    let mut out_dist = Vec::new();
    for f in Family::ALL {
        let k = f.answers().len();
        let d = rng.below(k);
        in_dist.push(d);
        out_dist.push((d + 1 + rng.below(k - 1)) % k);
    }
    let bias: Vec<f64> = Family::ALL
        .iter()
        .map(|f| match f.answer_type() {
            AnswerType::YesNo => cfg.yes_no_bias,
            _ => cfg.bias,
        })
        .collect();
    let skew_id = Skew::Biased {
        dominant: in_dist,
        bias: bias.clone(),
    };
    let skew_ood = Skew::Biased {
        dominant: out_dist,
        bias,
    };

    progress("planning scenes and questions");
    let sizes = split_sizes(cfg.questions);
    let plans = SPLITS
        .par_iter()
        .zip(&sizes)
        .map(|((name, _), &n)| {
            let skew = match *name {
                OOD_SPLIT => &skew_ood,
                VAL_SPLIT if cfg.balanced_val => &Skew::Balanced,
                _ => &skew_id,
            };
            let mut rng = Rng::new(seed_for(cfg.seed, &format!("split {name}")));
            plan_split(&mut rng, n, cfg.per_image, skew)
        })
        .collect::<Result<Vec<Vec<PlannedImage>>>>()?;

    let images_dir = out.join("images");
    std::fs::create_dir_all(&images_dir).map_err(io_error(&images_dir))?;
    let source = ImageSourceSpec {
        dir: "images".into(),
        template: "synth_{image_id:06}.png".into(),
    };
    let mut all: Vec<(u64, &PlannedImage)> = Vec::new();
    for plan in &plans {
        for img in plan {
            all.push((all.len() as u64 + 1, img));
        }
    }
    progress(&format!("rendering {} images", all.len()));
    let rendered = all
        .par_iter()
        .map(|&(id, img)| {
            let path = images_dir.join(source.file_name(id)?);
            let pixels = render::render(&img.scene, cfg.image_size);
            let bytes = render::png(&pixels, cfg.image_size).map_err(|e| file_error(&path, e))?;
            std::fs::write(&path, bytes).map_err(io_error(&path))?;
            Ok(render::regions(&img.scene, cfg.seed, id, cfg.small_noise))
        })
        .collect::<Result<Vec<_>>>()?;
    let features_path = out.join("features.safetensors");
    let mut feats = Vec::with_capacity(all.len() * render::REGIONS * render::FEATURE_DIM);
    let mut boxes = Vec::with_capacity(all.len() * render::REGIONS * 4);
    let mut counts = Vec::with_capacity(all.len());
    for (f, b, c) in rendered {
        feats.extend(f);
        boxes.extend(b);
        counts.push(c);
    }
    RegionFeatures::new(
        all.iter().map(|(id, _)| *id).collect(),
        render::REGIONS,
        render::FEATURE_DIM,
        feats,
        boxes,
        counts,
        &features_path,
    )?
    .save(&features_path)?;

    progress("writing questions and annotations");
    let mut splits = BTreeMap::new();
    let mut summary = SynthSummary {
        images: all.len(),
        questions: Vec::new(),
    };
    let mut next_id = 1u64;
    for ((name, _), plan) in SPLITS.iter().zip(&plans) {
        let files = SplitFiles {
            questions: format!("vqacp_v2_{name}_questions.json"),
            annotations: format!("vqacp_v2_{name}_annotations.json"),
        };
        let mut annotators = Rng::new(seed_for(cfg.seed, &format!("annotators {name}")));
        let mut qs = Vec::new();
        let mut anns = Vec::new();
        for img in plan {
            let image_id = next_id;
            next_id += 1;
            for (k, q) in img.questions.iter().enumerate() {
                let question_id = image_id * 10 + k as u64;
                qs.push(QuestionRecord {
                    question_id,
                    image_id,
                    question: q.question.clone(),
                });
                anns.push(AnnotationRecord {
                    question_id,
                    image_id,
                    question_type: q.family.question_type().into(),
                    answer_type: q.family.answer_type().name().into(),
                    multiple_choice_answer: q.answer.into(),
                    answers: annotate(&mut annotators, q.family, q.answer),
                });
            }
        }
        summary.questions.push((name.to_string(), qs.len()));
        write_compact(&out.join(&files.questions), &qs)?;
        write_compact(&out.join(&files.annotations), &anns)?;
        splits.insert(name.to_string(), files);
    }
    let dominant = |skew: &Skew| -> BTreeMap<&str, &str> {
        let Skew::Biased { dominant, .. } = skew else {
            return BTreeMap::new();
        };
        Family::ALL
            .iter()
            .zip(dominant)
            .map(|(f, &d)| (f.question_type(), f.answers()[d]))
            .collect()
    };
    let mut generator = settings(cfg);
    generator.insert("name".into(), json!("sparsevlp data synth"));
    generator.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    generator.insert(
        "dominant_answers".into(),
        json!({
            "in_distribution": dominant(&skew_id),
            "out_of_distribution": dominant(&skew_ood),
        }),
    );
    let manifest = Manifest {
        splits,
        images: Some(source),
        features: Some("features.safetensors".into()),
        generator: Some(Value::Object(generator)),
    };
    write_json(&out.join(MANIFEST), &manifest)?;
    Ok(summary)
}

/// The settings of `cfg` under the names the manifest's `generator` facts use.
fn settings(cfg: &SynthConfig) -> Map<String, Value> {
    [
        ("seed", json!(cfg.seed)),
        ("questions", json!(cfg.questions)),
        ("bias", json!(cfg.bias)),
        ("yes_no_bias", json!(cfg.yes_no_bias)),
        ("image_size", json!(cfg.image_size)),
        ("questions_per_image", json!(cfg.per_image)),
        ("small_object_noise", json!(cfg.small_noise)),
        ("balanced_val", json!(cfg.balanced_val)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}

/// Whether `dir` holds a dataset this generator wrote with `cfg`'s settings (its
/// manifest records every one of them); false when there is no readable manifest, or it
/// comes from elsewhere or from other settings (e.g. an older version's defaults).
pub fn made_with(dir: &Path, cfg: &SynthConfig) -> bool {
    let Ok(manifest) = read_json::<Manifest>(&dir.join(MANIFEST)) else {
        return false;
    };
    let Some(Value::Object(facts)) = manifest.generator else {
        return false;
    };
    settings(cfg)
        .iter()
        .all(|(key, value)| facts.get(key) == Some(value))
}

/// Ten annotator answers: mostly the answer, some spelled differently, a few other
/// answers of the family.
fn annotate(rng: &mut Rng, family: Family, answer: &'static str) -> Vec<AnswerRecord> {
    let space = family.answers();
    let spellings = variants(answer);
    (1..=ANNOTATORS as u64)
        .map(|answer_id| {
            let u = rng.uniform();
            let text = if u < DISAGREE {
                let others: Vec<&str> = space.iter().copied().filter(|a| *a != answer).collect();
                others[rng.below(others.len())].to_string()
            } else if u < DISAGREE + VARIANT {
                spellings[rng.below(spellings.len())].clone()
            } else {
                answer.to_string()
            };
            AnswerRecord {
                answer: text,
                answer_confidence: Some(if u < DISAGREE { "maybe" } else { "yes" }.into()),
                answer_id: Some(answer_id),
            }
        })
        .collect()
}

/// Writes records as compact JSON (the VQA files' style), atomically.
fn write_compact<T: serde::Serialize>(path: &Path, records: &[T]) -> Result<()> {
    let bytes = serde_json::to_vec(records)
        .map_err(|e| file_error(path, format!("cannot encode JSON: {e}")))?;
    write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sizes_add_up() {
        assert_eq!(split_sizes(40_000), vec![24_000, 4_000, 6_000, 6_000]);
        let s = split_sizes(17);
        assert_eq!(s.iter().sum::<usize>(), 17);
        assert!(s.iter().all(|&n| n >= 1));
    }
}
