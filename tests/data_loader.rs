//! Loading VQA datasets: manifests and VQA-CP names, joined records, errors that name the
//! file and record, image patches, region features (file and grid), the decoded-image
//! cache, and batches built directly or by the background prefetcher.

use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use serde_json::{json, Value};
use sparsevlp::data::{
    prepare, AnswerType, BatchOptions, CacheStatus, DataConfig, GridConfig, ImageConfig,
    OutOfVocab, RegionFeatures, VisualBatch, VisualKind, VisualStore, VqaDataset,
};

fn q(id: u64, image: u64, text: &str) -> Value {
    json!({"question_id": id, "image_id": image, "question": text})
}

fn a(id: u64, image: u64, qtype: &str, atype: &str, mc: &str, answers: &[(&str, usize)]) -> Value {
    let list: Vec<Value> = answers
        .iter()
        .flat_map(|(ans, n)| std::iter::repeat_n(*ans, *n))
        .enumerate()
        .map(|(i, ans)| json!({"answer": ans, "answer_confidence": "yes", "answer_id": i + 1}))
        .collect();
    json!({"question_id": id, "image_id": image, "question_type": qtype, "answer_type": atype,
           "multiple_choice_answer": mc, "answers": list})
}

fn write(dir: &Path, name: &str, value: &Value) {
    std::fs::write(dir.join(name), serde_json::to_vec(value).unwrap()).unwrap();
}

fn image(dir: &Path, name: &str, w: u32, h: u32, colour: [u8; 3], format: ImageFormat) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    RgbImage::from_pixel(w, h, Rgb(colour))
        .save_with_format(dir.join("images").join(name), format)
        .unwrap();
}

fn train_records() -> (Value, Value) {
    let qs = json!([
        q(1, 1, "What color is the ball?"),
        q(2, 1, "Is there a dog?"),
        q(3, 2, "How many cats?"),
        q(4, 2, "What color is the car?"),
        q(5, 3, "Is there a cat?"),
        q(6, 3, "How many dogs?"),
    ]);
    let anns = json!([
        a(1, 1, "what color is the", "other", "red", &[("red", 10)]),
        a(
            2,
            1,
            "is there a",
            "yes/no",
            "yes",
            &[("yes", 8), ("no", 2)]
        ),
        a(
            3,
            2,
            "how many",
            "number",
            "2",
            &[("2", 5), ("two", 3), ("3", 2)]
        ),
        a(
            4,
            2,
            "what color is the",
            "other",
            "red",
            &[("red", 6), ("blue", 4)]
        ),
        a(5, 3, "is there a", "yes/no", "no", &[("no", 10)]),
        a(6, 3, "how many", "number", "2", &[("2", 10)]),
    ]);
    (qs, anns)
}

/// A dataset with a manifest: train (6 questions) and test (2), three PNG images and a
/// region-feature file.
fn dataset(dir: &Path) {
    let (qs, anns) = train_records();
    write(dir, "train_q.json", &qs);
    write(dir, "train_a.json", &anns);
    write(
        dir,
        "test_q.json",
        &json!({"questions": [q(7, 1, "What color is the sky?"), q(8, 3, "Is there a bird?")]}),
    );
    write(
        dir,
        "test_a.json",
        &json!({"annotations": [
            a(7, 1, "what color is the", "other", "blue", &[("blue", 10)]),
            a(8, 3, "is there a", "yes/no", "yes", &[("yes", 10)]),
        ]}),
    );
    write(
        dir,
        "dataset.json",
        &json!({
            "splits": {
                "test": {"questions": "test_q.json", "annotations": "test_a.json"},
                "train": {"questions": "train_q.json", "annotations": "train_a.json"},
            },
            "images": {"dir": "images", "template": "img_{image_id:03}.png"},
            "features": "regions.safetensors",
        }),
    );
    image(dir, "img_001.png", 32, 16, [255, 0, 0], ImageFormat::Png);
    image(dir, "img_002.png", 16, 16, [0, 255, 0], ImageFormat::Png);
    image(dir, "img_003.png", 64, 64, [0, 0, 255], ImageFormat::Png);
    let feats: Vec<f32> = (0..3 * 4 * 3).map(|i| i as f32).collect();
    let boxes: Vec<f32> = (0..3 * 4 * 4).map(|i| (i % 5) as f32 / 5.0).collect();
    RegionFeatures::new(
        vec![1, 2, 3],
        4,
        3,
        feats,
        boxes,
        vec![2, 4, 1],
        Path::new("x"),
    )
    .unwrap()
    .save(&dir.join("regions.safetensors"))
    .unwrap();
}

fn config(visual: VisualKind) -> DataConfig {
    DataConfig {
        min_answer_count: 1,
        max_len: 8,
        visual,
        cache: false,
        ..DataConfig::default()
    }
}

fn patches16() -> VisualKind {
    VisualKind::Patches(ImageConfig {
        size: 64,
        patch: 16,
        ..ImageConfig::default()
    })
}

fn err_of<T: std::fmt::Debug>(r: sparsevlp::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn loads_splits_and_joins_questions_with_annotations() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let names: Vec<&str> = ds.splits().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["train", "test"]);
    let train = ds.split("train").unwrap();
    assert_eq!(train.examples.len(), 6);
    let ex = &train.examples[2];
    assert_eq!((ex.question_id, ex.image_id), (3, 2));
    assert_eq!(ex.question, "How many cats?");
    assert_eq!(ex.question_type, "how many");
    assert_eq!(ex.answer_type, AnswerType::Number);
    assert_eq!(ex.answers.len(), 10);
    assert_eq!(ds.split("test").unwrap().examples[1].answers[0], "yes");
    assert!(err_of(ds.split("val")).contains("train, test"));
}

#[test]
fn vqacp_file_names_work_without_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (qs, anns) = train_records();
    write(dir.path(), "vqacp_v2_train_questions.json", &qs);
    write(dir.path(), "vqacp_v2_train_annotations.json", &anns);
    let ds = VqaDataset::open(dir.path()).unwrap();
    assert_eq!(ds.splits().len(), 1);
    assert_eq!(ds.split("train").unwrap().examples.len(), 6);
    // without images in a manifest, patches cannot be built
    let err = err_of(VisualStore::load(&ds, patches16(), None));
    assert!(err.contains("names no images"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(err_of(VqaDataset::open(empty.path())).contains("dataset.json"));
}

#[test]
fn malformed_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    std::fs::write(dir.path().join("test_a.json"), "[{\"question_id\": 7,").unwrap();
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("test_a.json") && err.contains("malformed JSON"),
        "{err}"
    );

    std::fs::write(dir.path().join("dataset.json"), "{\"split\": {}}").unwrap();
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("dataset.json") && err.contains("split"),
        "{err}"
    );
}

#[test]
fn a_bad_record_is_named_by_number_and_question_id() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    write(
        dir.path(),
        "train_q.json",
        &json!([q(1, 1, "ok?"), {"question_id": 2, "image_id": 1, "question": 5}]),
    );
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("train_q.json") && err.contains("record 1") && err.contains("question_id 2"),
        "{err}"
    );
    let (qs, mut anns) = train_records();
    write(dir.path(), "train_q.json", &qs);
    anns[4]["answer_type"] = json!("colour");
    write(dir.path(), "train_a.json", &anns);
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("train_a.json") && err.contains("question_id 5") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn a_question_without_annotation_is_named() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let (_, anns) = train_records();
    let fewer: Vec<Value> = anns.as_array().unwrap()[..5].to_vec();
    write(dir.path(), "train_a.json", &Value::Array(fewer));
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("train_a.json") && err.contains("no annotation for question_id 6"),
        "{err}"
    );
    // and the reverse: an annotation whose question is missing
    let (qs, anns) = train_records();
    let fewer: Vec<Value> = qs.as_array().unwrap()[1..].to_vec();
    write(dir.path(), "train_q.json", &Value::Array(fewer));
    write(dir.path(), "train_a.json", &anns);
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(err.contains("question_id 1 has no question"), "{err}");
}

#[test]
fn an_empty_split_is_named() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    write(dir.path(), "test_q.json", &json!({"questions": []}));
    write(dir.path(), "test_a.json", &json!([]));
    let err = err_of(VqaDataset::open(dir.path()));
    assert!(
        err.contains("test_q.json") && err.contains("no questions"),
        "{err}"
    );
}

#[test]
fn a_missing_or_broken_image_is_named_with_a_question() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    std::fs::remove_file(dir.path().join("images/img_002.png")).unwrap();
    let ds = VqaDataset::open(dir.path()).unwrap();
    let err = err_of(VisualStore::load(&ds, patches16(), None));
    assert!(
        err.contains("img_002.png") && err.contains("image_id 2") && err.contains("question_id 3"),
        "{err}"
    );
    std::fs::write(dir.path().join("images/img_002.png"), b"not a png").unwrap();
    let err = err_of(VisualStore::load(&ds, patches16(), None));
    assert!(
        err.contains("img_002.png") && err.contains("cannot decode"),
        "{err}"
    );
}

#[test]
fn an_answer_outside_the_vocabulary_is_named_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let strict = DataConfig {
        min_answer_count: 2,
        out_of_vocab: OutOfVocab::Error,
        ..config(VisualKind::Regions)
    };
    let err = err_of(prepare(&ds, &strict));
    // train question 2 answers "yes", seen once: not in a vocabulary of answers seen twice
    assert!(
        err.contains("train_a.json") && err.contains("question_id 2") && err.contains("'yes'"),
        "{err}"
    );
    // by default such answers just get no target
    let lenient = DataConfig {
        min_answer_count: 2,
        ..config(VisualKind::Regions)
    };
    let prepared = prepare(&ds, &lenient).unwrap();
    assert_eq!(prepared.vocab.answers(), ["2", "red"]);
    let train = prepared.split("train").unwrap();
    assert!(train.targets(1).is_empty());
}

#[test]
fn region_features_are_read_and_missing_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let prepared = prepare(&ds, &config(VisualKind::Regions)).unwrap();
    let batch = prepared
        .batcher("train")
        .unwrap()
        .batch(&[0, 2, 4])
        .unwrap();
    let VisualBatch::Regions {
        features,
        boxes,
        mask,
    } = &batch.visual
    else {
        panic!("expected regions")
    };
    assert_eq!(features.dims(), &[3, 4, 3]);
    assert_eq!(boxes.dims(), &[3, 4, 4]);
    let f = features.to_vec_f32();
    // images 1, 2, 3 are rows 0, 1, 2 of the file: element (row r, region 0, 0) = 12 r
    assert_eq!((f[0], f[12], f[24]), (0.0, 12.0, 24.0));
    assert_eq!(
        mask.to_vec_f32(),
        [1., 1., 0., 0., 1., 1., 1., 1., 1., 0., 0., 0.]
    );

    RegionFeatures::new(
        vec![1, 3],
        1,
        1,
        vec![0.0; 2],
        vec![0.0; 8],
        vec![1, 1],
        Path::new("x"),
    )
    .unwrap()
    .save(&dir.path().join("regions.safetensors"))
    .unwrap();
    let err = err_of(VisualStore::load(&ds, VisualKind::Regions, None));
    assert!(
        err.contains("regions.safetensors")
            && err.contains("image_id 2")
            && err.contains("question_id 3"),
        "{err}"
    );
    std::fs::write(dir.path().join("regions.safetensors"), b"garbage").unwrap();
    let err = err_of(VisualStore::load(&ds, VisualKind::Regions, None));
    assert!(err.contains("regions.safetensors"), "{err}");
}

#[test]
fn patches_are_resized_padded_normalised_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let prepared = prepare(&ds, &config(patches16())).unwrap();
    let batch = prepared.batcher("train").unwrap().batch(&[0, 2]).unwrap();
    let VisualBatch::Patches { pixels, mask } = &batch.visual else {
        panic!("expected patches")
    };
    assert_eq!(pixels.dims(), &[2, 16, 3 * 16 * 16]);
    // image 1 is 32×16, scaled to 64×32: the top two patch rows show it
    let m = mask.to_vec_f32();
    assert_eq!(
        &m[..16],
        &[1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0.]
    );
    // image 2 is square: every patch shows it
    assert!(m[16..].iter().all(|&x| x == 1.0));
    let p = pixels.to_vec_f32();
    let d = 3 * 16 * 16;
    // patch 0 of image 1: red → (1 − 0.5) / 0.5 = 1 in channel 0, −1 in the others
    assert!(p[..256].iter().all(|&x| (x - 1.0).abs() < 1e-6));
    assert!(p[256..768].iter().all(|&x| (x + 1.0).abs() < 1e-6));
    // padding is 0
    assert!(p[8 * d..16 * d].iter().all(|&x| x == 0.0));
    // image 2, green, channel 1 = 1
    assert!(p[16 * d + 256..16 * d + 512]
        .iter()
        .all(|&x| (x - 1.0).abs() < 1e-6));

    // text side: [CLS] what color is the ball ? [SEP], 8 tokens, no padding
    assert_eq!(batch.input_ids.len(), 16);
    assert_eq!(batch.text_mask.to_vec_f32()[..8], [1.0; 8]);
    // targets: "2" scores 1 (5 + 3 "two"), "3" is not in the vocabulary (min count 1 on
    // top answers: 2, red, no, yes)
    assert_eq!(prepared.vocab.answers(), ["2", "red", "no", "yes"]);
    assert_eq!(batch.targets.to_vec_f32()[4..], [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(batch.top_answers(), [Some(1), Some(0)]);
    assert_eq!(batch.answer_types, [AnswerType::Other, AnswerType::Number]);
    let types = prepared.prior.question_types();
    assert_eq!(types[batch.question_types[1]], "how many");
}

#[test]
fn jpeg_images_decode_and_bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dataset.json")).unwrap()).unwrap();
    manifest["images"]["template"] = json!("COCO_{image_id:012}.jpg");
    write(dir.path(), "dataset.json", &manifest);
    for id in 1..=3 {
        let name = format!("COCO_{id:012}.jpg");
        image(dir.path(), &name, 20, 40, [200, 100, 50], ImageFormat::Jpeg);
    }
    let ds = VqaDataset::open(dir.path()).unwrap();
    let kind = VisualKind::Patches(ImageConfig {
        size: 32,
        patch: 8,
        ..ImageConfig::default()
    });
    let store = VisualStore::load(&ds, kind, None).unwrap();
    assert_eq!(store.len(), 3);
    let prepared = prepare(&ds, &config(kind)).unwrap();
    let batch = prepared.batcher("test").unwrap().batch(&[1]).unwrap();
    let VisualBatch::Patches { pixels, mask } = &batch.visual else {
        panic!("expected patches")
    };
    assert_eq!(pixels.dims(), &[1, 16, 192]);
    // 20×40 → 16×32: the left two patch columns
    assert_eq!(
        mask.to_vec_f32(),
        [1., 1., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0.]
    );
    let red = pixels.to_vec_f32()[0];
    assert!((red - (200.0 / 255.0 - 0.5) / 0.5).abs() < 0.05, "{red}");

    let bad = VisualKind::Patches(ImageConfig {
        size: 30,
        patch: 8,
        ..ImageConfig::default()
    });
    assert!(err_of(VisualStore::load(&ds, bad, None)).contains("multiple"));
}

#[test]
fn grid_regions_summarise_image_cells() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    // image 3: left half red, right half blue
    let mut img = RgbImage::from_pixel(64, 64, Rgb([0, 0, 255]));
    for y in 0..64 {
        for x in 0..32 {
            img.put_pixel(x, y, Rgb([255, 0, 0]));
        }
    }
    img.save(dir.path().join("images/img_003.png")).unwrap();
    let ds = VqaDataset::open(dir.path()).unwrap();
    let grid = GridConfig {
        size: 64,
        cells: 2,
        pool: 2,
    };
    let prepared = prepare(&ds, &config(VisualKind::Grid(grid))).unwrap();
    let batch = prepared.batcher("train").unwrap().batch(&[4]).unwrap();
    let VisualBatch::Regions {
        features,
        boxes,
        mask,
    } = &batch.visual
    else {
        panic!("expected regions")
    };
    assert_eq!(features.dims(), &[1, 4, grid.dim()]);
    let f = features.to_vec_f32();
    let d = grid.dim();
    // cell 0 (top-left) is red: means (1, 0, 0), no spread; cell 1 (top-right) is blue
    assert_eq!(&f[..6], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(&f[d..d + 3], &[0.0, 0.0, 1.0]);
    assert_eq!(&boxes.to_vec_f32()[4..8], &[0.5, 0.0, 1.0, 0.5]);
    assert_eq!(mask.to_vec_f32(), [1.0; 4]);
}

#[test]
fn prefetching_yields_the_same_batches_as_direct_loading() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let prepared = prepare(&ds, &config(patches16())).unwrap();
    let batcher = prepared.batcher("train").unwrap();
    let opts = BatchOptions {
        batch_size: 4,
        shuffle: true,
        seed: 11,
        depth: 1,
        ..BatchOptions::default()
    };
    for epoch in 0..3 {
        let direct: Vec<_> = batcher
            .batches(&opts, epoch)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let ahead: Vec<_> = batcher
            .prefetch(&opts, epoch)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(direct.len(), 2);
        assert_eq!(direct, ahead);
        let mut seen: Vec<usize> = direct.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..6).collect::<Vec<_>>());
    }
    let e0 = batcher.plan(&opts, 0).unwrap();
    assert_ne!(e0, batcher.plan(&opts, 1).unwrap(), "epochs reshuffle");
    let drop_last = BatchOptions {
        drop_last: true,
        ..opts
    };
    assert_eq!(batcher.plan(&drop_last, 0).unwrap().len(), 1);
    // dropping a prefetcher early stops its thread
    let mut early = batcher.prefetch(&opts, 0).unwrap();
    assert!(early.next().is_some());
    drop(early);
    let zero = BatchOptions {
        batch_size: 0,
        ..opts
    };
    assert!(batcher.prefetch(&zero, 0).is_err());
}

#[test]
fn decoded_images_are_cached_and_the_cache_follows_the_files() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let ds = VqaDataset::open(dir.path()).unwrap();
    let cached = DataConfig {
        cache: true,
        ..config(patches16())
    };
    let first = prepare(&ds, &cached).unwrap();
    assert_eq!(first.visual.cache_status(), &CacheStatus::Written);
    assert!(dir.path().join(".sparsevlp-cache/canvas-64.bin").exists());
    let second = prepare(&ds, &cached).unwrap();
    assert_eq!(second.visual.cache_status(), &CacheStatus::Hit);
    let all = |p: &sparsevlp::data::Prepared| {
        let b = p.batcher("train").unwrap();
        b.batch(&[0, 1, 2, 3, 4, 5]).unwrap()
    };
    assert_eq!(all(&first), all(&second));
    // a changed image (new size) invalidates the cache
    image(dir.path(), "img_003.png", 8, 8, [1, 2, 3], ImageFormat::Png);
    let third = prepare(&ds, &cached).unwrap();
    assert_eq!(third.visual.cache_status(), &CacheStatus::Written);
    assert_ne!(all(&first), all(&third));
    // a damaged cache file is ignored and rewritten
    std::fs::write(dir.path().join(".sparsevlp-cache/canvas-64.bin"), b"junk").unwrap();
    let fourth = prepare(&ds, &cached).unwrap();
    assert_eq!(fourth.visual.cache_status(), &CacheStatus::Written);
    assert_eq!(all(&third), all(&fourth));
}
