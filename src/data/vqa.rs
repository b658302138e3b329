//! VQA v2 / VQA-CP v2 JSON records, the `dataset.json` manifest, and loading a dataset
//! directory into joined question + annotation examples.
//!
//! Questions carry `question_id, image_id, question`; annotations carry `question_id,
//! image_id, question_type, answer_type, multiple_choice_answer, answers[{answer,
//! answer_confidence, answer_id}]`. A file's top level is a list of records or an object
//! holding the list under `questions` / `annotations` (VQA v2 style). Other fields (such as
//! VQA-CP's `coco_split`) are ignored.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

use super::files::{file_error, io_error};

/// The manifest file name inside a dataset directory.
pub const MANIFEST: &str = "dataset.json";

/// A question record as stored in a questions file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QuestionRecord {
    pub question_id: u64,
    pub image_id: u64,
    pub question: String,
}

/// One annotator's answer as stored in an annotations file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AnswerRecord {
    pub answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_confidence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_id: Option<u64>,
}

/// An annotation record as stored in an annotations file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AnnotationRecord {
    pub question_id: u64,
    pub image_id: u64,
    pub question_type: String,
    pub answer_type: String,
    pub multiple_choice_answer: String,
    pub answers: Vec<AnswerRecord>,
}

/// The three VQA answer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AnswerType {
    /// `yes/no`.
    #[serde(rename = "yes/no")]
    YesNo,
    /// `number`.
    #[serde(rename = "number")]
    Number,
    /// `other`.
    #[serde(rename = "other")]
    Other,
}

impl AnswerType {
    /// All answer types in report order.
    pub const ALL: [AnswerType; 3] = [AnswerType::YesNo, AnswerType::Number, AnswerType::Other];

    /// The name used in the JSON files (`yes/no`, `number`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            AnswerType::YesNo => "yes/no",
            AnswerType::Number => "number",
            AnswerType::Other => "other",
        }
    }

    /// Parses a JSON name; `None` for anything else.
    pub fn parse(name: &str) -> Option<AnswerType> {
        AnswerType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for AnswerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One question joined with its annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The question id (unique within a split).
    pub question_id: u64,
    /// The image the question is about.
    pub image_id: u64,
    /// The question text.
    pub question: String,
    /// The VQA question type (`what color is the`, `how many`, ...).
    pub question_type: String,
    /// The answer type.
    pub answer_type: AnswerType,
    /// The most common annotator answer, as stored.
    pub multiple_choice_answer: String,
    /// The annotators' answers as stored (usually 10), not normalised.
    pub answers: Vec<String>,
}

/// A split: its files and its examples, in question-file order.
#[derive(Debug, Clone)]
pub struct Split {
    /// The split name (`train`, `val`, `test`, ...).
    pub name: String,
    /// The questions file.
    pub questions_file: PathBuf,
    /// The annotations file.
    pub annotations_file: PathBuf,
    /// The examples.
    pub examples: Vec<Example>,
}

/// The files of one split in a manifest, relative to the dataset directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFiles {
    /// The questions file.
    pub questions: String,
    /// The annotations file.
    pub annotations: String,
}

/// Where the raw images are: a directory and a file-name template such as
/// `{image_id}.png` or `COCO_train2014_{image_id:012}.jpg` (zero-padded to 12 digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSourceSpec {
    /// The image directory, relative to the dataset directory.
    pub dir: String,
    /// The file-name template; `{image_id}` or `{image_id:0N}` is replaced by the id.
    pub template: String,
}

impl ImageSourceSpec {
    /// The file name of `image_id`, or an error naming the template when it is malformed.
    pub fn file_name(&self, image_id: u64) -> Result<String> {
        let mut out = String::with_capacity(self.template.len() + 12);
        let mut rest = self.template.as_str();
        let bad = |why: &str| {
            Error::invalid(format!(
                "image template '{}': {why} (use {{image_id}} or {{image_id:012}})",
                self.template
            ))
        };
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(bad("unmatched '}'"));
            }
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').ok_or_else(|| bad("unclosed '{'"))? + open;
            let field = &rest[open + 1..close];
            let width = match field.strip_prefix("image_id") {
                Some("") => 0,
                Some(spec) => spec
                    .strip_prefix(":0")
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|&w| w <= 32)
                    .ok_or_else(|| bad(&format!("unsupported format '{field}'")))?,
                None => return Err(bad(&format!("unknown field '{field}'"))),
            };
            out.push_str(&format!("{image_id:0width$}"));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The `dataset.json` manifest: each split's files, and the visual source(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Split name → files.
    pub splits: BTreeMap<String, SplitFiles>,
    /// Raw images, for single-stream models (patches) or grid regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageSourceSpec>,
    /// A safetensors file of region features and boxes, for dual-stream models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<String>,
    /// Free-form facts about how the dataset was made (e.g. the synthetic generator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Value>,
}

/// A loaded dataset directory: its manifest and every split.
#[derive(Debug, Clone)]
pub struct VqaDataset {
    root: PathBuf,
    manifest: Manifest,
    splits: Vec<Split>,
}

impl VqaDataset {
    /// Loads every split of the dataset in `dir`: from `dataset.json` when present,
    /// otherwise from the VQA-CP v2 names `vqacp_v2_{train,test}_{questions,annotations}.json`.
    pub fn open(dir: &Path) -> Result<VqaDataset> {
        let manifest = read_manifest(dir)?;
        let mut splits = manifest
            .splits
            .par_iter()
            .map(|(name, files)| {
                load_split(
                    name,
                    &dir.join(&files.questions),
                    &dir.join(&files.annotations),
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            // The first bad split in manifest order, whichever thread found it first.
            .collect::<Result<Vec<_>>>()?;
        splits.sort_by_key(|s| split_rank(&s.name));
        Ok(VqaDataset {
            root: dir.to_path_buf(),
            manifest,
            splits,
        })
    }

    /// The dataset directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest (synthesised from the VQA-CP v2 names when the directory has none).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The splits, `train` first, then `val`, then the others by name.
    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    /// The split called `name`, or an error listing the splits there are.
    pub fn split(&self, name: &str) -> Result<&Split> {
        self.splits.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.splits.iter().map(|s| s.name.as_str()).collect();
            Error::invalid(format!(
                "{}: no split '{name}' (splits: {})",
                self.root.display(),
                names.join(", ")
            ))
        })
    }

    /// The image directory and template, when the manifest names one.
    pub fn image_source(&self) -> Option<(PathBuf, &ImageSourceSpec)> {
        self.manifest
            .images
            .as_ref()
            .map(|spec| (self.root.join(&spec.dir), spec))
    }

    /// The region-feature file, when the manifest names one.
    pub fn features_file(&self) -> Option<PathBuf> {
        self.manifest.features.as_ref().map(|f| self.root.join(f))
    }

    /// For each image id, the first question that refers to it (split questions file and
    /// question id), so errors about an image can name a record.
    pub fn image_references(&self) -> HashMap<u64, (&Path, u64)> {
        let mut refs = HashMap::new();
        for split in &self.splits {
            for ex in &split.examples {
                refs.entry(ex.image_id)
                    .or_insert((split.questions_file.as_path(), ex.question_id));
            }
        }
        refs
    }
}

/// Train first, then val, then everything else by name.
fn split_rank(name: &str) -> (u8, String) {
    let rank = match name {
        "train" => 0,
        "val" => 1,
        _ => 2,
    };
    (rank, name.to_string())
}

/// Reads `dir/dataset.json`, or builds a manifest from the VQA-CP v2 file names.
fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| file_error(&path, format!("not a valid manifest: {e}")))?;
        if manifest.splits.is_empty() {
            return Err(file_error(&path, "the manifest names no splits"));
        }
        if let Some(spec) = &manifest.images {
            spec.file_name(0)
                .map_err(|e| file_error(&path, e.to_string()))?;
        }
        return Ok(manifest);
    }
    let mut splits = BTreeMap::new();
    for name in ["train", "test"] {
        let files = SplitFiles {
            questions: format!("vqacp_v2_{name}_questions.json"),
            annotations: format!("vqacp_v2_{name}_annotations.json"),
        };
        if dir.join(&files.questions).exists() {
            splits.insert(name.to_string(), files);
        }
    }
    if splits.is_empty() {
        return Err(file_error(
            dir,
            format!("no {MANIFEST} and no vqacp_v2_{{train,test}}_questions.json files"),
        ));
    }
    Ok(Manifest {
        splits,
        images: None,
        features: None,
        generator: None,
    })
}

/// The record list of a file: the top-level list, or the list under `key`.
fn record_list<'a>(doc: &'a Value, key: &str, path: &Path) -> Result<&'a [Value]> {
    match doc {
        Value::Array(items) => Ok(items),
        Value::Object(map) => match map.get(key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(file_error(path, format!("'{key}' is not a list"))),
            None => Err(file_error(
                path,
                format!("expected a list of records or an object with '{key}'"),
            )),
        },
        _ => Err(file_error(
            path,
            format!("expected a list of records or an object with '{key}'"),
        )),
    }
}

/// Decodes every record of a list, naming the record number and question id on error.
fn decode_records<T: for<'de> Deserialize<'de>>(items: &[Value], path: &Path) -> Result<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            T::deserialize(v).map_err(|e| {
                let id = v
                    .get("question_id")
                    .map(|q| format!(" (question_id {q})"))
                    .unwrap_or_default();
                file_error(path, format!("record {i}{id}: {e}"))
            })
        })
        .collect()
}

/// A VQA v2 style questions file: the records under `questions`.
#[derive(Deserialize)]
struct QuestionsDoc {
    questions: Vec<QuestionRecord>,
}

/// A VQA v2 style annotations file: the records under `annotations`.
#[derive(Deserialize)]
struct AnnotationsDoc {
    annotations: Vec<AnnotationRecord>,
}

/// Reads the records of a file. The fast path decodes the records directly (a top-level
/// list, or an object through `keyed`); when that fails, the file is read again as a
/// generic JSON document to report the failing record by number and question id.
fn read_records<T: for<'de> Deserialize<'de>>(
    path: &Path,
    key: &str,
    keyed: impl Fn(&[u8]) -> Option<Vec<T>>,
) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let fast = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<T>>(&bytes).ok(),
        Some(b'{') => keyed(&bytes),
        _ => None,
    };
    if let Some(records) = fast {
        return Ok(records);
    }
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| file_error(path, format!("malformed JSON: {e}")))?;
    decode_records(record_list(&doc, key, path)?, path)
}

/// Loads one split and joins its questions with their annotations.
fn load_split(name: &str, questions_file: &Path, annotations_file: &Path) -> Result<Split> {
    let (questions, annotations) = rayon::join(
        || {
            read_records(questions_file, "questions", |bytes| {
                serde_json::from_slice::<QuestionsDoc>(bytes)
                    .ok()
                    .map(|d| d.questions)
            })
        },
        || {
            read_records(annotations_file, "annotations", |bytes| {
                serde_json::from_slice::<AnnotationsDoc>(bytes)
                    .ok()
                    .map(|d| d.annotations)
            })
        },
    );
    let (questions, annotations) = (questions?, annotations?);
    if questions.is_empty() {
        return Err(file_error(
            questions_file,
            format!("split '{name}' has no questions"),
        ));
    }
    let mut by_id: HashMap<u64, AnnotationRecord> = HashMap::with_capacity(annotations.len());
    for a in annotations {
        let id = a.question_id;
        if by_id.insert(id, a).is_some() {
            return Err(file_error(
                annotations_file,
                format!("two annotations for question_id {id}"),
            ));
        }
    }
    let mut examples = Vec::with_capacity(questions.len());
    let mut seen = std::collections::HashSet::with_capacity(questions.len());
    for q in questions {
        if !seen.insert(q.question_id) {
            return Err(file_error(
                questions_file,
                format!("question_id {} appears twice", q.question_id),
            ));
        }
        let a = by_id.remove(&q.question_id).ok_or_else(|| {
            file_error(
                annotations_file,
                format!(
                    "no annotation for question_id {} (asked in {})",
                    q.question_id,
                    questions_file.display()
                ),
            )
        })?;
        examples.push(join(q, a, annotations_file)?);
    }
    if let Some(id) = by_id.keys().min() {
        return Err(file_error(
            annotations_file,
            format!(
                "annotation for question_id {id} has no question in {}",
                questions_file.display()
            ),
        ));
    }
    Ok(Split {
        name: name.to_string(),
        questions_file: questions_file.to_path_buf(),
        annotations_file: annotations_file.to_path_buf(),
        examples,
    })
}

/// Joins a question with its annotation, checking they agree.
fn join(q: QuestionRecord, a: AnnotationRecord, annotations_file: &Path) -> Result<Example> {
    let record = |msg: String| {
        file_error(
            annotations_file,
            format!("question_id {}: {msg}", q.question_id),
        )
    };
    if a.image_id != q.image_id {
        return Err(record(format!(
            "image_id {} differs from the question's image_id {}",
            a.image_id, q.image_id
        )));
    }
    let answer_type = AnswerType::parse(&a.answer_type).ok_or_else(|| {
        record(format!(
            "unknown answer_type '{}' (expected yes/no, number or other)",
            a.answer_type
        ))
    })?;
    if a.answers.is_empty() {
        return Err(record("no annotator answers".into()));
    }
    Ok(Example {
        question_id: q.question_id,
        image_id: q.image_id,
        question: q.question,
        question_type: a.question_type,
        answer_type,
        multiple_choice_answer: a.multiple_choice_answer,
        answers: a.answers.into_iter().map(|r| r.answer).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_pad_and_reject_unknown_fields() {
        let spec = |t: &str| ImageSourceSpec {
            dir: "images".into(),
            template: t.into(),
        };
        assert_eq!(spec("{image_id}.png").file_name(42).unwrap(), "42.png");
        assert_eq!(
            spec("COCO_train2014_{image_id:012}.jpg")
                .file_name(42)
                .unwrap(),
            "COCO_train2014_000000000042.jpg"
        );
        assert!(spec("{id}.png").file_name(1).is_err());
        assert!(spec("{image_id.png").file_name(1).is_err());
        assert!(spec("x}.png").file_name(1).is_err());
        assert!(spec("{image_id:x}.png").file_name(1).is_err());
    }
}
