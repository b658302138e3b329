//! DAS on trained checkpoints ([`sparsevlp::das::pipeline`], `sparsevlp das`): a search
//! writes das.json with k chosen layers that `das train` reads; training keeps the
//! backbone and the skipped layers bit-identical (they get no gradient) while adapters
//! and head change; the result evaluates; bad input fails before anything is written;
//! a pruned checkpoint keeps its zeros and formats; the per-k report measures savings.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{arg, sparsevlp};
use sparsevlp::das::adapters::{apply_skips, DasBottlenecks};
use sparsevlp::das::pipeline::{
    chosen_layers, das_train_options, load_source, load_source_for, search, train, LayerChoice,
    SearchOptions,
};
use sparsevlp::das::record::DAS_FILE;
use sparsevlp::das::report::{run_report, ReportOptions};
use sparsevlp::data::synth::{generate, SynthConfig};
use sparsevlp::data::BatchOptions;
use sparsevlp::data::Prepared;
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::structure::is_adapter_param;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Init, Mode, Module};
use sparsevlp::prune::{
    choose_formats, export_pruned, magnitude_prune, Allocation, CostModel, Granularity,
};
use sparsevlp::sparse::SparseFormat;
use sparsevlp::tensor::Tensor;
use sparsevlp::train::loss::{build_objective, LossKind};
use sparsevlp::train::setup::{fit_to_data, open_data};
use sparsevlp::train::{backward_batch, forward_batch, TrainOptions, Trainer};
use tempfile::TempDir;

/// A tiny dataset and a model of `preset` trained one epoch on it.
struct Pretrained {
    tmp: TempDir,
    data_dir: PathBuf,
    data: Prepared,
    run: PathBuf,
}

fn pretrained(preset: &str) -> Pretrained {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let synth = SynthConfig {
        questions: 240,
        image_size: 24,
        ..SynthConfig::default()
    };
    generate(&data_dir, &synth, &mut |_| {}).unwrap();
    let mut config = ModelConfig::preset(preset).unwrap();
    let (_, data) = open_data(&config, Some(&data_dir), &mut |_| {}).unwrap();
    fit_to_data(&mut config, &data).unwrap();
    let init = Init {
        seed: 3,
        ..Init::default()
    };
    let model = VqaModel::new(&config, &init).unwrap();
    let run = tmp.path().join("run");
    let objective = build_objective(LossKind::Bce, config.hidden, 0).unwrap();
    let options = TrainOptions {
        epochs: 1,
        batch_size: 16,
        ..TrainOptions::default()
    };
    Trainer::new(
        HfCheckpoint::new(config, model),
        objective,
        &data,
        options,
        BTreeSet::new(),
    )
    .unwrap()
    .with_run_dir(&run, serde_json::Value::Null)
    .unwrap()
    .run()
    .unwrap();
    Pretrained {
        tmp,
        data_dir,
        data,
        run,
    }
}

impl Pretrained {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn search(&self, k: usize, layers: LayerChoice, out: &Path) -> BTreeSet<String> {
        let source = load_source_for(&self.run, &self.data).unwrap();
        let opts = SearchOptions {
            k,
            layers,
            train: das_train_options(2, 8, 1e-3, 0),
        };
        let record = search(source, &self.data, &opts, out).unwrap();
        assert_eq!(record.chosen.len(), k);
        record.chosen_set()
    }

    fn train(&self, from: &Path, skip: &BTreeSet<String>, out: &Path) {
        let source = load_source_for(from, &self.data).unwrap();
        train(
            source,
            &self.data,
            skip,
            das_train_options(1, 16, 2e-3, 0),
            out,
            serde_json::Value::Null,
        )
        .unwrap();
    }
}

/// Every parameter value by name.
fn params(model: &VqaModel) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    model.visit_params(&mut |p| {
        out.insert(p.name.clone(), p.value.to_vec_f64());
    });
    out
}

fn in_layers(name: &str, layers: &BTreeSet<String>) -> bool {
    layers.iter().any(|l| name.starts_with(&format!("{l}.")))
}

/// The DAS run `out` trained from `pre` skipping `skip`: the backbone and the skipped
/// layers are bit-identical to `pre`, the head and every adapter changed from where
/// training started.
fn check_trained(pre: &Pretrained, skip: &BTreeSet<String>, out: &Path) {
    let before = load_source(&pre.run).unwrap().checkpoint.model;
    let after = load_source(out).unwrap().checkpoint.model;
    assert_eq!(
        after.skipped_layers().into_keys().collect::<BTreeSet<_>>(),
        *skip
    );
    // Where training started: the same adapters, freshly initialised.
    let mut start = before.clone();
    let init = Init {
        seed: 0,
        ..Init::default()
    };
    let hidden = load_source(&pre.run).unwrap().checkpoint.config.hidden;
    apply_skips(&mut start, skip, DasBottlenecks::for_hidden(hidden), &init).unwrap();
    let start = params(&start);
    let after_params = params(&after);
    assert_eq!(
        start.keys().collect::<Vec<_>>(),
        after_params.keys().collect::<Vec<_>>()
    );
    let frozen = after.das_frozen_params();
    let (mut changed_adapters, mut adapters, mut head_changed) = (0, 0, false);
    for (name, value) in &after_params {
        if frozen.contains(name) || (in_layers(name, skip) && !is_adapter_param(name)) {
            assert!(
                frozen.contains(name),
                "{name} of a skipped layer is trainable"
            );
            assert_eq!(value, &start[name], "frozen {name} changed");
        } else if is_adapter_param(name) {
            adapters += 1;
            changed_adapters += usize::from(value != &start[name]);
        } else if name.starts_with("classifier") || name.starts_with("answer_head") {
            head_changed |= value != &start[name];
        }
    }
    assert!(adapters > 0);
    assert!(
        changed_adapters * 2 > adapters,
        "only {changed_adapters} of {adapters} adapter tensors changed"
    );
    assert!(head_changed, "the head did not train");
}

#[test]
fn single_stream_search_then_train_then_eval() {
    let pre = pretrained("tiny-single");
    let search_run = pre.path("search");
    let chosen = pre.search(1, LayerChoice::Auto, &search_run);
    assert!(search_run.join(DAS_FILE).is_file());
    assert_eq!(chosen_layers(&search_run).unwrap(), chosen);
    let out = pre.path("das");
    // Through the binary: das train reads das.json, eval loads the run.
    let run = sparsevlp(&[
        "--threads",
        "2",
        "das",
        "train",
        "--checkpoint",
        arg(&pre.run),
        "--das",
        arg(&search_run),
        "--data",
        arg(&pre.data_dir),
        "--epochs",
        "1",
        "--batch",
        "16",
        "--lr",
        "2e-3",
        "--out",
        arg(&out),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    check_trained(&pre, &chosen, &out);
    let eval = sparsevlp(&[
        "eval",
        "--checkpoint",
        arg(&out),
        "--data",
        arg(&pre.data_dir),
    ]);
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.status.success() && stdout.contains("test-ood"),
        "{stdout}"
    );
}

#[test]
fn skipped_layers_get_no_gradient() {
    let pre = pretrained("tiny-single");
    let mut source = load_source(&pre.run).unwrap();
    let skip: BTreeSet<String> = ["vilt.encoder.layer.0".to_string()].into();
    let hidden = source.checkpoint.config.hidden;
    let model = &mut source.checkpoint.model;
    apply_skips(
        model,
        &skip,
        DasBottlenecks::for_hidden(hidden),
        &Init::default(),
    )
    .unwrap();
    let batch = pre
        .data
        .batcher("train")
        .unwrap()
        .batches(
            &BatchOptions {
                batch_size: 8,
                ..BatchOptions::default()
            },
            0,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    model.zero_grad().unwrap();
    let (logits, _) = forward_batch(model, &batch, Mode::Train { seed: 1 }).unwrap();
    let dlogits =
        Tensor::from_vec(vec![1.0f32; logits.shape().numel()], logits.shape().clone()).unwrap();
    backward_batch(model, &dlogits, None).unwrap();
    let (mut skipped_params, mut adapter_grad) = (0, 0.0f64);
    model.visit_params(&mut |p| {
        let g = p.grad.to_vec_f64();
        if in_layers(&p.name, &skip) && !is_adapter_param(&p.name) {
            skipped_params += 1;
            assert!(g.iter().all(|x| *x == 0.0), "{} has a gradient", p.name);
        } else if p.name.contains(".skip_adapter.") {
            adapter_grad += g.iter().map(|x| x.abs()).sum::<f64>();
        }
    });
    assert!(skipped_params > 0);
    assert!(adapter_grad > 0.0, "the skip adapter gets no gradient");
}

#[test]
fn dual_stream_search_over_all_layers_and_cross_only() {
    let pre = pretrained("tiny-dual");
    let model = load_source(&pre.run).unwrap().checkpoint.model;
    assert_eq!(LayerChoice::Cross.layers(&model).unwrap().len(), 1);
    assert_eq!(
        LayerChoice::Auto.layers(&model).unwrap(),
        LayerChoice::Cross.layers(&model).unwrap()
    );
    assert_eq!(
        LayerChoice::All.layers(&model).unwrap(),
        model.skippable_layers()
    );
    let search_run = pre.path("search");
    let chosen = pre.search(2, LayerChoice::All, &search_run);
    let out = pre.path("das");
    pre.train(&pre.run, &chosen_layers(&search_run).unwrap(), &out);
    check_trained(&pre, &chosen, &out);
    // k beyond the single cross layer is refused before anything is written.
    let source = load_source(&pre.run).unwrap();
    let opts = SearchOptions {
        k: 2,
        layers: LayerChoice::Cross,
        train: das_train_options(2, 8, 1e-3, 0),
    };
    let err = search(source, &pre.data, &opts, &pre.path("cross")).unwrap_err();
    assert!(err.to_string().contains("--skip 2"), "{err}");
    assert!(!pre.path("cross").exists());
}

#[test]
fn bad_input_fails_and_writes_nothing() {
    let pre = pretrained("tiny-single");
    let base = |cmd: &str, out: &Path| -> Vec<String> {
        [
            "das",
            cmd,
            "--checkpoint",
            arg(&pre.run),
            "--data",
            arg(&pre.data_dir),
            "--out",
            arg(out),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let fails = |args: Vec<String>, out: &Path, expect: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = sparsevlp(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    };
    let out = pre.path("out");
    let mut a = base("search", &out);
    a.extend(["--skip".into(), "3".into()]);
    fails(a, &out, "--skip 3");
    let mut a = base("search", &out);
    a.extend([
        "--skip".into(),
        "1".into(),
        "--layers".into(),
        "cross".into(),
    ]);
    fails(a, &out, "cross-modality");
    let mut a = base("train", &out);
    a.extend(["--skip-layers".into(), "vilt.encoder.layer.9".into()]);
    fails(a, &out, "vilt.encoder.layer.9");
    let mut a = base("train", &out);
    a.extend(["--das".into(), arg(&pre.path("nowhere")).into()]);
    fails(a, &out, DAS_FILE);
    fails(base("train", &out), &out, "--das RUN");
}

#[test]
fn das_on_a_pruned_checkpoint_keeps_zeros_and_formats() {
    let pre = pretrained("tiny-single");
    let mut ckpt = load_source(&pre.run).unwrap().checkpoint;
    let masks =
        magnitude_prune(&ckpt.model, &Allocation::Uniform(0.5), Granularity::Element).unwrap();
    let mut formats = choose_formats(&masks, 64, &CostModel::default_cpu().unwrap()).unwrap();
    for c in formats.values_mut() {
        c.format = SparseFormat::Csr;
    }
    let pruned = pre.path("pruned");
    export_pruned(&pruned, &mut ckpt, &masks, &formats).unwrap();
    std::fs::copy(
        pre.run.join("best/answers.json"),
        pruned.join("answers.json"),
    )
    .unwrap();
    let skip: BTreeSet<String> = ["vilt.encoder.layer.1".to_string()].into();
    let out = pre.path("das");
    pre.train(&pruned, &skip, &out);
    let back = load_source(&out).unwrap();
    assert!(back.pruned);
    let mut checked = 0;
    back.checkpoint.model.visit_params(&mut |p| {
        if let Some(entry) = masks.entries.get(&p.name) {
            let (rows, cols) = (entry.mask.rows(), entry.mask.cols());
            let value = p.value.to_vec_f64();
            assert_eq!(rows * cols, value.len(), "{}", p.name);
            let mut zeros = 0;
            for (i, v) in value.iter().enumerate() {
                if !entry.mask.is_kept(i / cols, i % cols) {
                    assert_eq!(*v, 0.0, "{} lost a zero", p.name);
                    zeros += 1;
                }
            }
            assert!(zeros > 0, "{} has nothing pruned", p.name);
            if p.value.dims().len() == 2 && !p.name.contains("embeddings") {
                assert_eq!(p.format, SparseFormat::Csr, "{}", p.name);
            }
            checked += 1;
        }
    });
    assert_eq!(checked, masks.entries.len());
}

#[test]
fn report_measures_every_k_against_the_unskipped_model() {
    let pre = pretrained("tiny-single");
    let out = pre.path("report");
    let opts = ReportOptions {
        ks: vec![1],
        layers: LayerChoice::Auto,
        search_epochs: 2,
        train: das_train_options(1, 8, 2e-3, 0),
        latency_batch: 8,
        budget: Duration::from_millis(50),
    };
    // Too few batches per epoch for a search: refused before anything is trained.
    let big = ReportOptions {
        train: das_train_options(1, 64, 2e-3, 0),
        ..opts.clone()
    };
    let err = run_report(&pre.run, &pre.data, &big, &out, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("--batch"), "{err}");
    assert!(!out.exists());
    let mut heard = Vec::new();
    let rows = run_report(&pre.run, &pre.data, &opts, &out, &mut |r| heard.push(r.k)).unwrap();
    assert_eq!(heard, vec![0, 1]);
    assert_eq!(rows[0].flops_saved, 0.0);
    assert!(rows[0].skipped.is_empty());
    assert_eq!(rows[1].skipped.len(), 1);
    assert!(rows[1].flops_saved > 0.0 && rows[1].gflops < rows[0].gflops);
    for r in &rows {
        assert!(r.trainable_params > 0 && r.trainable_params < r.params);
        assert!(r.accuracy.contains_key("test-ood") && !r.accuracy.contains_key("train"));
    }
    for f in ["das_report.json", "das_report.csv", "das_report.md"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("das_report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(out.join("k1/search").join(DAS_FILE).is_file());
}
