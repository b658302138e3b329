//! The demo's results: one entry per trained model and seed, aggregated per model into
//! one table (mean ± standard deviation over seeds), written as text, markdown, CSV and
//! JSON, with two SVG plots: accuracy vs sparsity of the pruned models and
//! out-of-distribution accuracy vs measured latency of every model.

use std::path::Path;

use serde::Serialize;

use super::measure::ModelFacts;
use crate::atomic_file::write_atomically;
use crate::data::AnswerType;
use crate::error::Result;
use crate::report::{markdown_table, text_table, to_csv, LinePlot, Panel, Series};

/// How a model was obtained, for grouping in plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Trained in full.
    Dense,
    /// Pruned (mask training or magnitude pruning).
    Pruned,
    /// Layers skipped by DAS.
    Skipped,
    /// Pruned, then layers skipped by DAS.
    PrunedSkipped,
}

impl Family {
    /// The label in plots.
    fn label(self) -> &'static str {
        match self {
            Family::Dense => "dense",
            Family::Pruned => "pruned",
            Family::Skipped => "skipped (DAS)",
            Family::PrunedSkipped => "pruned + skipped",
        }
    }
}

/// One trained model of one seed, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The row name, e.g. `lpf+lmh 50%`.
    pub model: String,
    /// How it was obtained.
    pub family: Family,
    /// Weight sparsity of the prunable matrices in [0, 1].
    pub sparsity: f64,
    /// Skipped layers.
    pub skipped: usize,
    /// The seed.
    pub seed: u64,
    /// The run directory holding its checkpoint.
    pub run: String,
    /// Parameters, FLOPs, accuracy.
    pub facts: ModelFacts,
    /// Median forward latency in ms on the latency batch.
    pub latency_ms: f64,
}

/// The accuracy columns: (split, answer type or `None` for overall).
const ACCURACY_COLUMNS: [(&str, Option<AnswerType>); 8] = [
    ("test-id", None),
    ("test-id", Some(AnswerType::YesNo)),
    ("test-id", Some(AnswerType::Number)),
    ("test-id", Some(AnswerType::Other)),
    ("test-ood", None),
    ("test-ood", Some(AnswerType::YesNo)),
    ("test-ood", Some(AnswerType::Number)),
    ("test-ood", Some(AnswerType::Other)),
];

/// The table header.
pub const HEADER: [&str; 13] = [
    "model",
    "seeds",
    "nonzero params",
    "MFLOPs/example",
    "latency ms",
    "id all",
    "id y/n",
    "id num",
    "id other",
    "ood all",
    "ood y/n",
    "ood num",
    "ood other",
];

/// An accuracy of an entry in percent.
fn accuracy(entry: &Entry, split: &str, answer_type: Option<AnswerType>) -> f64 {
    entry
        .facts
        .accuracy
        .get(split)
        .map_or(f64::NAN, |r| match answer_type {
            None => r.overall,
            Some(t) => r.answer_type(t),
        })
}

/// Mean and (population) standard deviation.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// `mean` alone for one seed, `mean ± std` for several.
fn cell(values: &[f64], decimals: usize) -> String {
    let (mean, std) = mean_std(values);
    if values.len() > 1 {
        format!("{mean:.decimals$} ± {std:.decimals$}")
    } else {
        format!("{mean:.decimals$}")
    }
}

/// The entries grouped by model name, in first-appearance order.
fn groups(entries: &[Entry]) -> Vec<(&str, Vec<&Entry>)> {
    let mut out: Vec<(&str, Vec<&Entry>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(m, _)| *m == e.model) {
            Some((_, group)) => group.push(e),
            None => out.push((&e.model, vec![e])),
        }
    }
    out
}

/// One table row per model (means over seeds).
pub fn rows(entries: &[Entry]) -> Vec<Vec<String>> {
    groups(entries)
        .into_iter()
        .map(|(model, group)| {
            let of = |f: &dyn Fn(&Entry) -> f64| group.iter().map(|e| f(e)).collect::<Vec<_>>();
            let mut row = vec![
                model.to_string(),
                group.len().to_string(),
                cell(&of(&|e| e.facts.nonzero_params as f64), 0),
                cell(&of(&|e| e.facts.effective_flops / 1e6), 2),
                cell(&of(&|e| e.latency_ms), 2),
            ];
            for (split, t) in ACCURACY_COLUMNS {
                row.push(cell(&of(&|e| accuracy(e, split, t)), 1));
            }
            row
        })
        .collect()
}

/// The out-of-distribution effect of the debiasing objectives, from the dense models of
/// `entries` (means over seeds): BCE's gap (test-id − test-ood) and, for every other
/// dense model, the share of that gap it closes on test-ood,
/// (ood_model − ood_bce) / (id_bce − ood_bce). `None` without a dense `bce` model.
pub fn gap_summary(entries: &[Entry]) -> Option<String> {
    let dense: Vec<(&str, Vec<&Entry>)> = groups(entries)
        .into_iter()
        .filter(|(_, g)| g[0].family == Family::Dense)
        .collect();
    let mean_of = |group: &[&Entry], split: &str| {
        mean_std(
            &group
                .iter()
                .map(|e| accuracy(e, split, None))
                .collect::<Vec<_>>(),
        )
        .0
    };
    let (_, bce) = dense.iter().find(|(m, _)| *m == "bce")?;
    let (id, ood) = (mean_of(bce, "test-id"), mean_of(bce, "test-ood"));
    let gap = id - ood;
    let mut lines = vec![format!(
        "BCE: test-id {id:.1}, test-ood {ood:.1}, gap {gap:.1} points (means over seeds)."
    )];
    for (model, group) in dense.iter().filter(|(m, _)| *m != "bce") {
        let m_ood = mean_of(group, "test-ood");
        lines.push(format!(
            "{model}: test-ood {m_ood:.1}, closes {:.0}% of BCE's gap.",
            100.0 * (m_ood - ood) / gap
        ));
    }
    Some(lines.join("\n"))
}

/// Mean over seeds of `f` for each model of `family`, as (x, y) points sorted by x.
fn points(
    entries: &[Entry],
    family: &[Family],
    x: &dyn Fn(&Entry) -> f64,
    y: &dyn Fn(&Entry) -> f64,
) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = groups(entries)
        .into_iter()
        .filter(|(_, g)| family.contains(&g[0].family))
        .map(|(_, g)| {
            let xs: Vec<f64> = g.iter().map(|e| x(e)).collect();
            let ys: Vec<f64> = g.iter().map(|e| y(e)).collect();
            (mean_std(&xs).0, mean_std(&ys).0)
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// A pruning chain: a panel title and its model names, the unpruned start first.
pub type Chain = (String, Vec<String>);

/// Accuracy (test-id and test-ood) against weight sparsity, one panel per pruning chain
/// over its dense and pruned models.
pub fn sparsity_plot(entries: &[Entry], chains: &[Chain]) -> LinePlot {
    let all = [Family::Dense, Family::Pruned];
    let panels = chains
        .iter()
        .map(|(title, chain)| {
            let picked: Vec<Entry> = entries
                .iter()
                .filter(|e| chain.contains(&e.model))
                .cloned()
                .collect();
            let series = ["test-id", "test-ood"]
                .into_iter()
                .map(|split| {
                    Series::new(
                        split,
                        points(&picked, &all, &|e| e.sparsity * 100.0, &|e| {
                            accuracy(e, split, None)
                        }),
                    )
                })
                .collect();
            Panel {
                title: title.clone(),
                x_label: "sparsity %".into(),
                y_label: "VQA accuracy %".into(),
                log_y: false,
                series,
            }
        })
        .collect::<Vec<_>>();
    LinePlot {
        title: "Accuracy vs weight sparsity (mask training)".into(),
        columns: panels.len().clamp(1, 3),
        panels,
    }
}

/// Test-ood accuracy against measured forward latency, one series per family.
pub fn frontier_plot(entries: &[Entry]) -> LinePlot {
    let families = [
        Family::Dense,
        Family::Pruned,
        Family::Skipped,
        Family::PrunedSkipped,
    ];
    let series = families
        .into_iter()
        .map(|f| {
            Series::new(
                f.label(),
                points(entries, &[f], &|e| e.latency_ms, &|e| {
                    accuracy(e, "test-ood", None)
                }),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    LinePlot {
        title: "Out-of-distribution accuracy vs measured latency".into(),
        columns: 1,
        panels: vec![Panel {
            title: "each point: one model (mean over seeds)".into(),
            x_label: "forward latency ms".into(),
            y_label: "test-ood accuracy %".into(),
            log_y: false,
            series,
        }],
    }
}

/// Writes report.md, results.csv, results.json and the plots into `out` (the
/// accuracy-vs-sparsity plot only when there are pruning chains); returns the text table.
pub fn write_report(
    out: &Path,
    entries: &[Entry],
    chains: &[Chain],
    notes: &str,
) -> Result<String> {
    let rows = rows(entries);
    let table = text_table(&HEADER, &rows);
    let sparsity_link = if chains.is_empty() {
        ""
    } else {
        "![accuracy vs sparsity](accuracy_vs_sparsity.svg)\n\n"
    };
    let markdown = format!(
        "# sparsevlp demo report\n\n{notes}\n\n{}\n\n{sparsity_link}![OOD accuracy vs latency](ood_vs_latency.svg)\n",
        markdown_table(&HEADER, &rows)
    );
    let json = serde_json::to_string_pretty(entries)
        .map_err(|e| crate::Error::invalid(format!("cannot encode the demo results: {e}")))?;
    let mut files: Vec<(&str, String)> = vec![
        ("report.md", markdown),
        ("results.csv", to_csv(&HEADER, &rows)),
        ("results.json", json),
        ("ood_vs_latency.svg", frontier_plot(entries).to_svg()),
    ];
    if !chains.is_empty() {
        files.push((
            "accuracy_vs_sparsity.svg",
            sparsity_plot(entries, chains).to_svg(),
        ));
    }
    for (name, text) in files {
        write_atomically(&out.join(name), text.as_bytes())?;
    }
    Ok(table)
}
