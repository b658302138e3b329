//! Criterion bench of the data pipeline on the default synthetic dataset (40 000
//! questions, `SynthConfig::default()`), written once to a temporary directory.
//!
//! One iteration = open the dataset (JSON of all four splits), build the answer
//! vocabulary, bias prior and word vocabulary, load the visual inputs, tokenize and score
//! every split, and build every batch (256 examples) of every split:
//! - `patches/cold`: the decoded-image cache is deleted first, so every PNG is decoded
//!   and the cache is written (a first run);
//! - `patches/cached`: the canvases come from the cache (a second run);
//! - `regions`: region features + boxes from the safetensors file (dual-stream input).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sparsevlp::data::synth::{generate, SynthConfig};
use sparsevlp::data::{
    prepare, BatchOptions, CacheStatus, DataConfig, ImageConfig, VisualKind, VqaDataset,
    DEFAULT_CACHE_DIR,
};

/// Loads everything and builds every batch; returns the number of examples batched.
fn load_all(dir: &Path, visual: VisualKind, expect: &CacheStatus) -> usize {
    let ds = VqaDataset::open(dir).unwrap();
    let cfg = DataConfig {
        visual,
        ..DataConfig::default()
    };
    let prepared = prepare(&ds, &cfg).unwrap();
    assert_eq!(prepared.visual.cache_status(), expect);
    let opts = BatchOptions {
        batch_size: 256,
        ..BatchOptions::default()
    };
    let mut n = 0;
    for split in &prepared.splits {
        let batcher = prepared.batcher(split.name()).unwrap();
        for batch in batcher.batches(&opts, 0).unwrap() {
            n += black_box(batch.unwrap()).len();
        }
    }
    n
}

fn bench_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &SynthConfig::default(), &mut |_| {}).unwrap();
    eprintln!(
        "synthetic dataset: {} images, questions {:?}",
        summary.images, summary.questions
    );
    let cache = dir.path().join(DEFAULT_CACHE_DIR);
    let patches = VisualKind::Patches(ImageConfig::default());
    let mut g = c.benchmark_group("data_load_40k");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("patches/cold", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&cache);
            },
            |()| load_all(dir.path(), patches, &CacheStatus::Written),
            BatchSize::PerIteration,
        )
    });
    // The last cold iteration left the cache behind.
    g.bench_function("patches/cached", |b| {
        b.iter(|| load_all(dir.path(), patches, &CacheStatus::Hit))
    });
    g.bench_function("regions", |b| {
        b.iter(|| load_all(dir.path(), VisualKind::Regions, &CacheStatus::Off))
    });
    g.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
