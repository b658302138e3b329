//! The built-in biased dataset: deterministic for a seed, answerable from the picture,
//! loadable by the ordinary loader, and shifted so that answering with the training prior
//! loses at least 40 points from test-id to test-ood.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sparsevlp::data::stats::DatasetStats;
use sparsevlp::data::synth::{generate, made_with, SynthConfig};
use sparsevlp::data::{
    prepare, AnswerType, AnswerVocab, BatchOptions, BiasPrior, DataConfig, RegionFeatures,
    VisualBatch, VisualKind, VqaDataset, VqaScorer,
};

fn small(seed: u64, questions: usize) -> SynthConfig {
    SynthConfig {
        seed,
        questions,
        ..SynthConfig::default()
    }
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let summary = generate(a.path(), &small(7, 400), &mut |_| {}).unwrap();
    generate(b.path(), &small(7, 400), &mut |_| {}).unwrap();
    generate(c.path(), &small(8, 400), &mut |_| {}).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert!(fa.len() > 10, "{:?}", fa.keys().collect::<Vec<_>>());
    assert!(fa == fb, "same seed, different output");
    let train = PathBuf::from("vqacp_v2_train_annotations.json");
    assert_ne!(fa[&train], fc[&train], "another seed, the same annotations");
    let total: usize = summary.questions.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 400);
    let names: Vec<&str> = summary.questions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["train", "val", "test-id", "test-ood"]);
}

#[test]
fn a_dataset_knows_the_settings_it_was_made_with() {
    // `train`/`eval`/`demo` regenerate their default dataset when this says no, so a
    // dataset from an older version's defaults is not used silently.
    let dir = tempfile::tempdir().unwrap();
    assert!(!made_with(dir.path(), &small(3, 200)), "an empty directory");
    generate(dir.path(), &small(3, 200), &mut |_| {}).unwrap();
    assert!(made_with(dir.path(), &small(3, 200)));
    assert!(
        !made_with(dir.path(), &small(3, 300)),
        "other question count"
    );
    assert!(!made_with(dir.path(), &small(4, 200)), "other seed");
    let other_bias = SynthConfig {
        yes_no_bias: 0.8,
        ..small(3, 200)
    };
    assert!(!made_with(dir.path(), &other_bias), "other yes/no bias");
    let manifest = dir.path().join("dataset.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"balanced_val\": true", "\"balanced_val\": false"),
    )
    .unwrap();
    assert!(!made_with(dir.path(), &small(3, 200)), "an edited manifest");
    std::fs::write(&manifest, "{ not json").unwrap();
    assert!(!made_with(dir.path(), &small(3, 200)), "a broken manifest");
}

#[test]
fn bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for cfg in [
        small(0, 5),
        SynthConfig {
            bias: 1.5,
            ..small(0, 100)
        },
        SynthConfig {
            image_size: 8,
            ..small(0, 100)
        },
        SynthConfig {
            per_image: 0,
            ..small(0, 100)
        },
        SynthConfig {
            yes_no_bias: -0.1,
            ..small(0, 100)
        },
        SynthConfig {
            small_noise: -1.0,
            ..small(0, 100)
        },
    ] {
        assert!(generate(dir.path(), &cfg, &mut |_| {}).is_err(), "{cfg:?}");
    }
}

/// Accuracy (percent) of answering every question of `split` with the training prior's
/// top answer for its question type, computed from the public pieces.
fn prior_baseline(ds: &VqaDataset, split: &str) -> f64 {
    let train = ds.split("train").unwrap();
    let vocab = AnswerVocab::build(train, 1).unwrap();
    let prior = BiasPrior::build(train, &vocab);
    let mut scorer = VqaScorer::new();
    for ex in &ds.split(split).unwrap().examples {
        let top = prior
            .top_answer(prior.type_index(&ex.question_type))
            .unwrap();
        scorer.add(ex, vocab.answer(top).unwrap());
    }
    scorer.report().overall
}

#[test]
fn the_training_prior_loses_at_least_40_points_out_of_distribution() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &small(3, 3000), &mut |_| {}).unwrap();
    let ds = VqaDataset::open(dir.path()).unwrap();
    let (id, ood) = (
        prior_baseline(&ds, "test-id"),
        prior_baseline(&ds, "test-ood"),
    );
    assert!(id - ood >= 40.0, "test-id {id:.2}, test-ood {ood:.2}");
    assert!(id > 60.0, "test-id {id:.2}");

    let stats = DatasetStats::compute(&ds, "train", 3).unwrap();
    let (sid, sood) = (
        stats.split("test-id").unwrap(),
        stats.split("test-ood").unwrap(),
    );
    assert!((sid.prior_accuracy.overall - id).abs() < 1e-9);
    assert!((sood.prior_accuracy.overall - ood).abs() < 1e-9);
    assert!(sood.prior_shift > 0.5 && sid.prior_shift < 0.1);
    // every answer type is present, and each loses under the shift
    for t in AnswerType::ALL {
        assert!(sid.per_answer_type[t.name()] > 0);
        assert!(sid.prior_accuracy.answer_type(t) - sood.prior_accuracy.answer_type(t) > 30.0);
    }
    assert_eq!(stats.prior_answers.len(), 6);
    assert!(stats.to_text().contains("test-ood"));
}

/// The prior's top-answer accuracy (percent) on `split` per answer type.
fn prior_by_type(ds: &VqaDataset, split: &str) -> BTreeMap<&'static str, f64> {
    let stats = DatasetStats::compute(ds, "train", 3).unwrap();
    let report = &stats.split(split).unwrap().prior_accuracy;
    AnswerType::ALL
        .iter()
        .map(|&t| (t.name(), report.answer_type(t)))
        .collect()
}

#[test]
fn yes_no_types_take_their_own_bias_and_val_can_be_balanced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        bias: 0.5,
        yes_no_bias: 0.9,
        balanced_val: true,
        ..small(4, 6000)
    };
    generate(dir.path(), &cfg, &mut |_| {}).unwrap();
    let ds = VqaDataset::open(dir.path()).unwrap();
    // test-id follows the training distribution: the prior's answer is right about as
    // often as each type's bias says (annotator noise costs a little).
    let id = prior_by_type(&ds, "test-id");
    assert!((id["yes/no"] - 90.0).abs() < 4.0, "{id:?}");
    assert!((id["number"] - 50.0).abs() < 6.0, "{id:?}");
    assert!((id["other"] - 50.0).abs() < 6.0, "{id:?}");
    // val has every answer equally often (two yes/no answers, four counts, four to six
    // "other" answers): the prior is right about as often as chance, plus sampling noise
    // and annotators' partial credit.
    let val = prior_by_type(&ds, "val");
    for (t, chance) in [("yes/no", 50.0), ("number", 25.0), ("other", 20.0)] {
        assert!(val[t] < chance + 10.0, "{t}: {val:?}");
        assert!(id[t] - val[t] > 20.0, "{t}: {id:?} {val:?}");
    }
}

#[test]
fn small_objects_can_be_read_less_clearly() {
    // The deviation of a region's colour and shape parts from exact one-hot values,
    // split by the region's size (one-hot part 10..12: small, large).
    let deviations = |small_noise: f64| -> (f32, f32) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            small_noise,
            ..small(6, 300)
        };
        generate(dir.path(), &cfg, &mut |_| {}).unwrap();
        let feats = RegionFeatures::load(&dir.path().join("features.safetensors")).unwrap();
        let (mut small_dev, mut large_dev) = (0f32, 0f32);
        for row in 0..feats.len() {
            let f = feats.features(row);
            for r in 0..feats.count(row) {
                let region = &f[r * feats.dim()..(r + 1) * feats.dim()];
                let dev = region[..10]
                    .iter()
                    .map(|v| (v - v.round()).abs())
                    .fold(0f32, f32::max);
                if region[10] > region[11] {
                    small_dev = small_dev.max(dev);
                } else {
                    large_dev = large_dev.max(dev);
                }
            }
        }
        (small_dev, large_dev)
    };
    let (small_dev, large_dev) = deviations(0.0);
    assert!(small_dev <= 0.1 + 1e-6 && large_dev <= 0.1 + 1e-6);
    let (small_dev, large_dev) = deviations(0.5);
    assert!(
        small_dev > 0.3,
        "small objects deviate by at most {small_dev}"
    );
    assert!(
        large_dev <= 0.1 + 1e-6,
        "large objects deviate by {large_dev}"
    );
}

/// Region feature layout of the synthetic data: one-hot colour (red, green, blue, yellow,
/// purple, orange), one-hot shape (circle, square, triangle, diamond), one-hot size, box.
const COLOURS: [&str; 6] = ["red", "green", "blue", "yellow", "purple", "orange"];
const SHAPES: [&str; 4] = ["circle", "square", "triangle", "diamond"];

fn argmax(xs: &[f32]) -> usize {
    (0..xs.len())
        .max_by(|&a, &b| xs[a].total_cmp(&xs[b]))
        .unwrap()
}

#[test]
fn answers_can_be_read_off_the_regions_and_the_pipeline_builds_inputs() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &small(5, 600), &mut |_| {}).unwrap();
    let ds = VqaDataset::open(dir.path()).unwrap();
    let cfg = DataConfig {
        visual: VisualKind::Regions,
        min_answer_count: 1,
        cache: false,
        ..DataConfig::default()
    };
    let prepared = prepare(&ds, &cfg).unwrap();
    // yes/no, 0..3 and six colours and four shapes
    assert_eq!(prepared.vocab.len(), 2 + 4 + 6 + 4);
    let batcher = prepared.batcher("train").unwrap();
    let opts = BatchOptions {
        batch_size: 50,
        ..BatchOptions::default()
    };
    let mut checked = 0;
    for batch in batcher.batches(&opts, 0).unwrap() {
        let batch = batch.unwrap();
        let VisualBatch::Regions { features, mask, .. } = &batch.visual else {
            panic!("expected regions")
        };
        let (f, m) = (features.to_vec_f32(), mask.to_vec_f32());
        assert_eq!(&features.dims()[1..], &[8, 16]);
        for (k, &i) in batch.indices.iter().enumerate() {
            let ex = &batcher.split().examples()[i];
            let regions: Vec<&[f32]> = (0..8)
                .filter(|&r| m[k * 8 + r] == 1.0)
                .map(|r| &f[(k * 8 + r) * 16..(k * 8 + r + 1) * 16])
                .collect();
            let shape_of = |r: &[f32]| SHAPES[argmax(&r[6..10])];
            let colour_of = |r: &[f32]| COLOURS[argmax(&r[..6])];
            if let Some(rest) = ex.question.strip_prefix("how many ") {
                if let Some(shape) = rest
                    .strip_suffix("s are there?")
                    .filter(|s| SHAPES.contains(s))
                {
                    let n = regions.iter().filter(|r| shape_of(r) == shape).count();
                    assert_eq!(n.to_string(), ex.multiple_choice_answer, "{}", ex.question);
                    checked += 1;
                }
            } else if let Some(shape) = ex
                .question
                .strip_prefix("what color is the ")
                .and_then(|s| s.strip_suffix('?'))
                .filter(|s| SHAPES.contains(s))
            {
                let hit: Vec<_> = regions.iter().filter(|r| shape_of(r) == shape).collect();
                assert_eq!(hit.len(), 1, "{}", ex.question);
                assert_eq!(
                    colour_of(hit[0]),
                    ex.multiple_choice_answer,
                    "{}",
                    ex.question
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} questions checked");

    // the same data as patches, through the decoded-image cache
    let patches = DataConfig {
        visual: VisualKind::Patches(Default::default()),
        cache: true,
        ..cfg
    };
    let prepared = prepare(&ds, &patches).unwrap();
    let batch = prepared
        .batcher("test-ood")
        .unwrap()
        .batch(&[0, 1])
        .unwrap();
    let VisualBatch::Patches { pixels, mask } = &batch.visual else {
        panic!("expected patches")
    };
    assert_eq!(pixels.dims(), &[2, 64, 192]);
    assert_eq!(mask.to_vec_f32(), vec![1.0; 128]);
    assert_eq!(
        prepared.visual.cache_status(),
        &sparsevlp::data::CacheStatus::Written
    );
}
