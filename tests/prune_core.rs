//! Pruning core: sparsity allocation, magnitude pruning at every granularity, global vs
//! uniform ranking, the mask file, the format cost model, the pruned checkpoint, the report.

mod common;

use std::collections::BTreeMap;

use common::tiny::tiny_dual;
use sparsevlp::flops::FlopInput;
use sparsevlp::model::config::ModelConfig;
use sparsevlp::model::hf_checkpoint::HfCheckpoint;
use sparsevlp::model::modality::Modality;
use sparsevlp::model::vqa::VqaModel;
use sparsevlp::nn::{Init, Module};
use sparsevlp::prune::{
    choose_formats, export_pruned, load_pruned, magnitude_prune, Allocation, CostModel,
    Granularity, MaskSet, PruneReport, MASKS_FILE,
};
use sparsevlp::sparse::{Bitmask, Dense, SparseFormat};
use sparsevlp::{DType, Tensor};

/// A small f32 dual-stream config whose matrices span several 16/32 blocks.
fn config() -> ModelConfig {
    ModelConfig {
        hidden: 64,
        heads: 2,
        ffn: 96,
        vocab_size: 40,
        ..tiny_dual(0.0)
    }
}

fn model() -> VqaModel {
    let init = Init {
        seed: 3,
        std: 0.5,
        dtype: DType::F32,
    };
    VqaModel::new(&config(), &init).unwrap()
}

/// Prunable elements per group, counted from the model's parameters.
fn group_sizes(m: &VqaModel) -> BTreeMap<Modality, usize> {
    let groups: BTreeMap<String, Modality> = m
        .prunable_weights()
        .into_iter()
        .map(|w| (w.name, w.modality))
        .collect();
    let mut sizes = BTreeMap::new();
    m.visit_params(&mut |p| {
        if let Some(g) = groups.get(&p.name) {
            *sizes.entry(*g).or_insert(0) += p.value.numel();
        }
    });
    sizes
}

/// `t` with `f` applied to every element.
fn mapped(t: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    let v: Vec<f32> = t.as_slice::<f32>().unwrap().iter().map(|&x| f(x)).collect();
    Tensor::from_vec(v, t.dims().to_vec()).unwrap()
}

fn abs_values(e: &sparsevlp::prune::MaskEntry) -> Vec<(f32, bool)> {
    e.mask
        .values()
        .values()
        .iter()
        .zip(e.keep_flags())
        .map(|(v, k)| (v.abs(), k))
        .collect()
}

#[test]
fn modality_budget_is_solved_and_met() {
    let m = model();
    let sizes = group_sizes(&m);
    let alloc = Allocation::Modality {
        overall: 0.5,
        language: Some(0.6),
        visual: None,
        cross: Some(0.55),
    };
    let groups = alloc.group_sparsities(&sizes).unwrap();
    let size = |g| sizes[&g] as f64;
    let total: f64 = sizes.values().map(|&n| n as f64).sum();
    let spent: f64 = [
        Modality::Language,
        Modality::Visual,
        Modality::Cross,
        Modality::Head,
    ]
    .iter()
    .map(|&g| groups[&g] * size(g))
    .sum();
    assert!(
        (spent - 0.5 * total).abs() < 1e-6 * total,
        "{spent} vs {}",
        0.5 * total
    );
    assert_eq!(groups[&Modality::Head], 0.5);
    // The OMP masks realise the group sparsities to within one element per matrix.
    let masks = magnitude_prune(&m, &alloc, Granularity::Element).unwrap();
    for (name, e) in &masks.entries {
        assert_eq!(e.target, groups[&e.modality], "{name}");
        assert_eq!(e.pruned(), e.target_pruned(), "{name}");
    }
}

#[test]
fn infeasible_allocations_are_refused_and_nothing_is_written() {
    let m = model();
    let sizes = group_sizes(&m);
    let cases = [
        (
            Allocation::Modality {
                overall: 0.5,
                language: Some(1.2),
                visual: None,
                cross: Some(0.5),
            },
            "s_L",
        ),
        (
            Allocation::Modality {
                overall: 0.95,
                language: Some(0.1),
                visual: None,
                cross: Some(0.1),
            },
            "cannot be met",
        ),
        (
            Allocation::Modality {
                overall: 0.5,
                language: Some(0.5),
                visual: Some(0.9),
                cross: Some(0.5),
            },
            "overall target",
        ),
        (
            Allocation::Modality {
                overall: 0.5,
                language: Some(0.5),
                visual: None,
                cross: None,
            },
            "at least two",
        ),
        (Allocation::Uniform(1.5), "overall sparsity"),
    ];
    let dir = std::env::temp_dir().join(format!("prune-refused-{}", std::process::id()));
    for (alloc, needle) in cases {
        let msg = alloc.group_sparsities(&sizes).unwrap_err().to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        let result = magnitude_prune(&m, &alloc, Granularity::Element).and_then(|masks| {
            let mut ckpt = HfCheckpoint::new(config(), m.clone());
            export_pruned(&dir, &mut ckpt, &masks, &BTreeMap::new())
        });
        assert!(result.is_err());
        assert!(!dir.exists(), "a refused request wrote {}", dir.display());
    }
}

#[test]
fn element_omp_prunes_exactly_the_smallest() {
    let m = model();
    let masks = magnitude_prune(&m, &Allocation::Uniform(0.7), Granularity::Element).unwrap();
    assert_eq!(masks.entries.len(), m.prunable_weights().len());
    for (name, e) in &masks.entries {
        assert_eq!(
            e.pruned(),
            (0.7 * e.numel() as f64).floor() as usize,
            "{name}"
        );
        let v = abs_values(e);
        let max_pruned = v
            .iter()
            .filter(|x| !x.1)
            .map(|x| x.0)
            .fold(0.0f32, f32::max);
        let min_kept = v
            .iter()
            .filter(|x| x.1)
            .map(|x| x.0)
            .fold(f32::INFINITY, f32::min);
        assert!(
            max_pruned <= min_kept,
            "{name}: pruned {max_pruned} > kept {min_kept}"
        );
    }
}

#[test]
fn omp_ties_are_broken_by_index() {
    // A model whose weights are all equal: the lowest indices are pruned.
    let mut m = model();
    m.visit_params_mut(&mut |p| p.value = mapped(&p.value, |_| 1.0));
    let masks = magnitude_prune(&m, &Allocation::Uniform(0.25), Granularity::Element).unwrap();
    for e in masks.entries.values() {
        let k = e.target_pruned();
        let flags = e.keep_flags();
        assert!(flags[..k].iter().all(|&f| !f) && flags[k..].iter().all(|&f| f));
    }
}

#[test]
fn block_omp_is_within_one_block_and_block_structured() {
    let m = model();
    for b in [16, 32] {
        let masks = magnitude_prune(&m, &Allocation::Uniform(0.6), Granularity::Block(b)).unwrap();
        for (name, e) in &masks.entries {
            let k = e.target_pruned();
            assert!(
                e.pruned() <= k && e.pruned() + b * b > k,
                "{name}: {} vs {k}",
                e.pruned()
            );
            let (rows, cols) = (e.mask.rows(), e.mask.cols());
            for r in 0..rows {
                for c in 0..cols {
                    let corner = e.mask.is_kept(r / b * b, c / b * b);
                    assert_eq!(
                        e.mask.is_kept(r, c),
                        corner,
                        "{name} ({r}, {c}) not block-wise"
                    );
                }
            }
        }
    }
}

#[test]
fn two_four_keeps_two_of_four_and_refuses_other_targets() {
    let m = model();
    let masks = magnitude_prune(&m, &Allocation::Uniform(0.5), Granularity::Nm24).unwrap();
    for (name, e) in &masks.entries {
        let v = e.mask.values().values();
        for r in 0..e.mask.rows() {
            for c0 in (0..e.mask.cols()).step_by(4) {
                let group: Vec<usize> = (c0..(c0 + 4).min(e.mask.cols())).collect();
                let kept: Vec<usize> = group
                    .iter()
                    .copied()
                    .filter(|&c| e.mask.is_kept(r, c))
                    .collect();
                assert_eq!(kept.len(), group.len().min(2), "{name} row {r}");
                let at = |c: usize| v[r * e.mask.cols() + c].abs();
                for &p in group.iter().filter(|c| !kept.contains(c)) {
                    assert!(kept.iter().all(|&k| at(k) >= at(p)), "{name} row {r}");
                }
            }
        }
    }
    let err = magnitude_prune(&m, &Allocation::Uniform(0.7), Granularity::Nm24).unwrap_err();
    assert!(err.to_string().contains("exactly 50%"), "{err}");
}

#[test]
fn global_ranking_differs_from_uniform_as_expected() {
    let mut m = model();
    // One matrix with 10x larger weights: global ranking spares it, uniform does not.
    let big = "lxmert.encoder.x_layers.0.lang_inter.dense.weight";
    m.visit_params_mut(&mut |p| {
        if p.name == big {
            p.value = mapped(&p.value, |v| 10.0 * v);
        }
    });
    let uniform = magnitude_prune(&m, &Allocation::Uniform(0.5), Granularity::Element).unwrap();
    let global = magnitude_prune(&m, &Allocation::Global(0.5), Granularity::Element).unwrap();
    assert_eq!(
        uniform.entries[big].pruned(),
        uniform.entries[big].target_pruned()
    );
    assert!(
        global.entries[big].sparsity() < 0.1,
        "{}",
        global.entries[big].sparsity()
    );
    let total: usize = global.entries.values().map(|e| e.numel()).sum();
    let pruned: usize = global.entries.values().map(|e| e.pruned()).sum();
    assert_eq!(pruned, total / 2);
    let all: Vec<(f32, bool)> = global.entries.values().flat_map(abs_values).collect();
    let max_pruned = all
        .iter()
        .filter(|x| !x.1)
        .map(|x| x.0)
        .fold(0.0f32, f32::max);
    let min_kept = all
        .iter()
        .filter(|x| x.1)
        .map(|x| x.0)
        .fold(f32::INFINITY, f32::min);
    assert!(max_pruned <= min_kept);
}

fn info(masks: &MaskSet) -> BTreeMap<String, (Modality, Granularity, f64)> {
    masks
        .entries
        .iter()
        .map(|(n, e)| (n.clone(), (e.modality, e.granularity, e.target)))
        .collect()
}

#[test]
fn mask_file_round_trips_and_rejects_corruption() {
    let m = model();
    let masks = magnitude_prune(&m, &Allocation::Uniform(0.6), Granularity::Block(16)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MASKS_FILE);
    masks.save(&path).unwrap();
    let back = MaskSet::load(&path, &m, &info(&masks)).unwrap();
    assert_eq!(back, masks);
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = MaskSet::load(&path, &m, &info(&masks))
        .unwrap_err()
        .to_string();
    assert!(err.contains(MASKS_FILE), "{err}");
    // A mask value other than 0/1.
    let name = masks.entries.keys().next().unwrap().clone();
    let mut broken = masks.clone();
    let e = broken.entries.get_mut(&name).unwrap();
    let dense = Dense::new(vec![0.5; e.numel()], e.mask.rows(), e.mask.cols()).unwrap();
    e.mask = Bitmask::extract(dense.clone());
    let t = dense.to_tensor().unwrap();
    sparsevlp::checkpoint::save_tensors(&path, &[(name.clone(), t)], DType::F32).unwrap();
    let err = MaskSet::load(&path, &m, &info(&masks))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name) && err.contains("only 0 and 1"), "{err}");
}

/// A random element mask at `density` and a block mask of 32-blocks at `density`.
fn masks_768(density: f64) -> (Bitmask, Bitmask) {
    let n = 768;
    let v: Vec<f32> = (0..n * n).map(|i| 1.0 + (i % 7) as f32).collect();
    let dense = Dense::new(v, n, n).unwrap();
    let hash = |i: u64| sparsevlp::rng::mix64(i) as f64 / u64::MAX as f64;
    let elem: Vec<bool> = (0..n * n).map(|i| hash(i as u64) < density).collect();
    let block: Vec<bool> = (0..n * n)
        .map(|i| hash(1_000_000 + ((i / n / 32) * 24 + (i % n) / 32) as u64) < density)
        .collect();
    (
        Bitmask::from_flags(dense.clone(), &elem).unwrap(),
        Bitmask::from_flags(dense, &block).unwrap(),
    )
}

#[test]
fn format_choice_on_known_cases() {
    let cost = CostModel::default_cpu().unwrap();
    let (elem, block) = masks_768(0.1);
    // 90% block-sparse: a BSR format, well under the dense prediction.
    let c = cost.choose(&block, 512).unwrap();
    assert!(matches!(c.format, SparseFormat::Bsr(_)), "{c:?}");
    assert!(c.predicted_ms < 0.5 * c.dense_ms, "{c:?}");
    // 90% unstructured: BSR would store nearly every block (fill-in): never chosen.
    let c = cost.choose(&elem, 512).unwrap();
    assert!(
        !matches!(c.format, SparseFormat::Bsr(_) | SparseFormat::Nm24),
        "{c:?}"
    );
    // Nothing pruned: dense.
    // (the sweep's BSR-32 kernel with every block present is as fast as dense there.)
    let (full, _) = masks_768(1.1);
    let c = cost.choose(&full, 512).unwrap();
    assert!(
        matches!(c.format, SparseFormat::Dense | SparseFormat::Bsr(32)),
        "{c:?}"
    );
    assert!(c.predicted_ms <= c.dense_ms);
    // A sweep in which CSR is always cheapest picks CSR.
    let mut csv = String::from("op,format,rows,cols,tokens,sparsity,density,device,median_ms\n");
    for (f, scale) in [
        ("dense", 10.0),
        ("csr", 1.0),
        ("bsr32", 5.0),
        ("bsr16", 5.0),
    ] {
        for (rows, t) in [(768, 8), (768, 128), (3072, 8), (3072, 512)] {
            for d in [1.0, 0.5, 0.1] {
                let ms = scale * (0.01 + 1e-9 * rows as f64 * 768.0 * d * t as f64);
                csv += &format!("forward,{f},{rows},768,{t},0,{d},cpu,{ms}\n");
            }
        }
    }
    let custom = CostModel::from_csv_text(&csv, "custom").unwrap();
    assert_eq!(
        custom.choose(&block, 128).unwrap().format,
        SparseFormat::Csr
    );
    let err = CostModel::from_csv_text("op,format\nforward,csr\n", "broken").unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn export_reload_round_trip_and_report() {
    let m = model();
    let masks = magnitude_prune(&m, &Allocation::Uniform(0.75), Granularity::Block(16)).unwrap();
    let cost = CostModel::default_cpu().unwrap();
    let mut formats = choose_formats(&masks, 64, &cost).unwrap();
    // At these tiny shapes the model picks dense; make every other matrix BSR-16 so
    // the formats' round trip is exercised.
    for (i, c) in formats.values_mut().enumerate() {
        if i % 2 == 0 {
            c.format = SparseFormat::Bsr(16);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ckpt = HfCheckpoint::new(config(), m.clone());
    export_pruned(dir.path(), &mut ckpt, &masks, &formats).unwrap();
    let (back, back_masks, records) = load_pruned(dir.path()).unwrap();
    assert_eq!(back_masks.entries.len(), masks.entries.len());
    for (name, e) in &masks.entries {
        let b = &back_masks.entries[name];
        assert_eq!(b.mask.mask(), e.mask.mask(), "{name}");
        assert_eq!(
            (b.modality, b.granularity, b.target),
            (e.modality, e.granularity, e.target)
        );
        assert_eq!(records[name].achieved, e.sparsity());
    }
    let mut params = BTreeMap::new();
    back.model.visit_params(&mut |p| {
        params.insert(p.name.clone(), (p.value.clone(), p.format));
    });
    let mut n_sparse = 0;
    ckpt.model.visit_params(&mut |p| {
        let (v, f) = &params[&p.name];
        assert_eq!(
            v.as_slice::<f32>().unwrap(),
            p.value.as_slice::<f32>().unwrap(),
            "{}",
            p.name
        );
        assert_eq!(*f, p.format, "{}", p.name);
        if let Some(c) = formats.get(&p.name) {
            assert_eq!(c.format, p.format);
            n_sparse += usize::from(p.format != SparseFormat::Dense);
        }
    });
    assert!(n_sparse > 0);

    let input = FlopInput::default_for(&config());
    let report = PruneReport::new(&config(), &back.model, &back_masks, &formats, &input).unwrap();
    let mut nonzero = 0;
    back.model.visit_params(&mut |p| {
        nonzero += p
            .value
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .filter(|v| **v != 0.0)
            .count()
    });
    assert_eq!(report.params, back.model.num_params());
    assert_eq!(report.nonzero_params, nonzero);
    for row in &report.matrices {
        let e = &masks.entries[&row.name];
        assert_eq!(
            (row.kept, row.numel, row.achieved),
            (e.mask.nnz(), e.numel(), e.sparsity())
        );
    }
    for g in &report.groups {
        let (numel, kept) = masks
            .entries
            .values()
            .filter(|e| e.modality == g.group)
            .fold((0, 0), |a, e| (a.0 + e.numel(), a.1 + e.mask.nnz()));
        assert_eq!((g.numel, g.kept), (numel, kept));
    }
    assert!(
        report.effective_flops < 0.6 * report.dense_flops as f64,
        "{report:?}"
    );
    assert!(report.table().contains("language"));
    assert!(report.json().unwrap().contains("\"effective_flops\""));
}

#[test]
fn single_stream_groups_are_text_patches_and_encoder() {
    let init = Init {
        seed: 3,
        std: 0.5,
        dtype: DType::F32,
    };
    let m = VqaModel::new(&common::tiny::tiny_single(0.0), &init).unwrap();
    let sizes = group_sizes(&m);
    for g in [Modality::Language, Modality::Visual, Modality::Cross] {
        assert!(sizes.get(&g).copied().unwrap_or(0) > 0, "{g:?} is empty");
    }
    let alloc = Allocation::Modality {
        overall: 0.5,
        language: Some(0.6),
        visual: Some(0.3),
        cross: None,
    };
    let masks = magnitude_prune(&m, &alloc, Granularity::Element).unwrap();
    let groups = alloc.group_sparsities(&sizes).unwrap();
    for (name, e) in &masks.entries {
        assert_eq!(e.target, groups[&e.modality], "{name}");
        assert_eq!(e.pruned(), e.target_pruned(), "{name}");
    }
    let word = masks
        .entries
        .keys()
        .find(|n| n.ends_with("word_embeddings.weight"))
        .unwrap();
    assert_eq!(masks.entries[word].modality, Modality::Language);
}
