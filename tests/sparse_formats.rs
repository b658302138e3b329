//! Property tests for the sparse weight formats: dense → every format → dense is exact
//! over random shapes and masks, statistics equal direct counts, the CSR row order and
//! BSR block counts are right, 2:4 pruning keeps the largest magnitudes, and invalid raw
//! parts are rejected naming the broken invariant.

use proptest::prelude::*;
use sparsevlp::rng::Rng;
use sparsevlp::sparse::{prune_2_4, Bitmask, Bsr, Csr, Dense, Nm24, SparseFormat, SparseMatrix};
use sparsevlp::{DType, Tensor};

/// Every format a zeros-are-pruned matrix converts to (2:4 needs a 2:4 matrix).
const FORMATS: [SparseFormat; 6] = [
    SparseFormat::Dense,
    SparseFormat::Masked,
    SparseFormat::Csr,
    SparseFormat::Bsr(8),
    SparseFormat::Bsr(16),
    SparseFormat::Bsr(32),
];

/// A random `[rows, cols]` matrix keeping each element with probability `density`
/// (non-zero values), with every row in `empty_rows` (a bit set over rows) zeroed.
fn random_dense(rows: usize, cols: usize, density: f64, empty_rows: u64, seed: u64) -> Dense {
    let mut rng = Rng::new(seed);
    let values = (0..rows * cols)
        .map(|i| {
            let keep = rng.uniform() < density && empty_rows >> ((i / cols) % 64) & 1 == 0;
            let v = (rng.normal() as f32) + 0.5f32.copysign(rng.normal() as f32);
            if keep {
                v
            } else {
                0.0
            }
        })
        .collect();
    Dense::new(values, rows, cols).unwrap()
}

fn densities() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![0.0, 0.05, 0.3, 0.5, 0.8, 1.0])
}

/// The error message of a failed result.
fn message<T: std::fmt::Debug>(r: sparsevlp::Result<T>) -> String {
    r.expect_err("invalid parts must be rejected").to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_format_round_trips_exactly(
        rows in 1usize..40, cols in 1usize..40, density in densities(),
        empty_rows: u64, seed: u64,
    ) {
        let dense = random_dense(rows, cols, density, empty_rows, seed);
        let nnz = dense.values().iter().filter(|v| **v != 0.0).count();
        for format in FORMATS {
            let m = SparseMatrix::from_dense(format, dense.clone()).unwrap();
            prop_assert_eq!(m.format(), format);
            prop_assert_eq!(m.shape(), [rows, cols]);
            prop_assert_eq!(&m.to_dense(), &dense, "{}", format);
            let stats = m.stats();
            prop_assert_eq!(stats.nnz, nnz, "{}", format);
            prop_assert_eq!(stats.density, nnz as f64 / (rows * cols) as f64);
            prop_assert_eq!(stats.sparsity, 1.0 - stats.density);
            for other in FORMATS {
                prop_assert_eq!(&m.convert(other).unwrap().to_dense(), &dense);
            }
        }
        let pruned = prune_2_4(&dense);
        let nm = SparseMatrix::from_dense(SparseFormat::Nm24, pruned.clone()).unwrap();
        prop_assert_eq!(&nm.to_dense(), &pruned);
        prop_assert_eq!(nm.stats().nnz, pruned.nnz());
        let via_tensor = Dense::from_tensor(&dense.to_tensor().unwrap()).unwrap();
        prop_assert_eq!(&via_tensor, &dense);
    }

    #[test]
    fn masked_matrices_keep_their_pattern(
        rows in 1usize..30, cols in 1usize..70, density in densities(), seed: u64,
    ) {
        // Every value is non-zero except a few that the mask keeps explicitly.
        let mut rng = Rng::new(seed);
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| if rng.below(8) == 0 { 0.0 } else { 1.0 + rng.uniform() as f32 })
            .collect();
        let keep: Vec<bool> = (0..rows * cols).map(|_| rng.uniform() < density).collect();
        let masked =
            Bitmask::from_flags(Dense::new(values.clone(), rows, cols).unwrap(), &keep).unwrap();
        let kept = keep.iter().filter(|k| **k).count();
        prop_assert_eq!(masked.nnz(), kept);
        let applied = masked.apply();
        for (i, v) in applied.values().iter().enumerate() {
            prop_assert_eq!(*v, if keep[i] { values[i] } else { 0.0 });
            prop_assert_eq!(masked.is_kept(i / cols, i % cols), keep[i]);
        }
        let reloaded =
            Bitmask::from_parts(masked.values().clone(), masked.mask().to_vec()).unwrap();
        prop_assert_eq!(&reloaded, &masked);
        let csr = Csr::from_masked(&masked).unwrap();
        prop_assert_eq!(csr.nnz(), kept);
        prop_assert_eq!(&csr.to_dense(), &applied);
        for b in [8, 16, 32] {
            prop_assert_eq!(&Bsr::from_masked(&masked, b).unwrap().to_dense(), &applied);
        }
        let m = SparseMatrix::from_masked(SparseFormat::Masked, masked).unwrap();
        prop_assert_eq!(m.stats().nnz, kept);
    }

    #[test]
    fn csr_row_order_is_a_balanced_permutation(
        rows in 1usize..50, cols in 1usize..30, density in densities(),
        empty_rows: u64, seed: u64,
    ) {
        let dense = random_dense(rows, cols, density, empty_rows, seed);
        let csr = Csr::from_masked(&Bitmask::extract(dense.clone())).unwrap();
        let order = csr.row_order();
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..rows as u32).collect::<Vec<_>>());
        let row_nnz = |r: u32| {
            dense.values()[r as usize * cols..(r as usize + 1) * cols]
                .iter()
                .filter(|v| **v != 0.0)
                .count()
        };
        for w in order.windows(2) {
            let (a, b) = (row_nnz(w[0]), row_nnz(w[1]));
            prop_assert!(a > b || (a == b && w[0] < w[1]), "rows {} then {}", w[0], w[1]);
        }
        let rebuilt = Csr::from_parts(
            rows, cols, csr.row_ptr().to_vec(), csr.col_idx().to_vec(), csr.values().to_vec(),
        ).unwrap();
        prop_assert_eq!(&rebuilt, &csr);
    }

    #[test]
    fn bsr_block_statistics_match_a_direct_count(
        rows in 1usize..70, cols in 1usize..70, density in densities(),
        empty_rows: u64, seed: u64, b in prop::sample::select(vec![8usize, 16, 32]),
    ) {
        let dense = random_dense(rows, cols, density, empty_rows, seed);
        let (br, bc) = (rows.div_ceil(b), cols.div_ceil(b));
        let mut nonempty = 0;
        for bi in 0..br {
            for bj in 0..bc {
                let any = (bi * b..((bi + 1) * b).min(rows)).any(|r| {
                    (bj * b..((bj + 1) * b).min(cols)).any(|c| dense.values()[r * cols + c] != 0.0)
                });
                nonempty += usize::from(any);
            }
        }
        let m = SparseMatrix::from_dense(SparseFormat::Bsr(b), dense.clone()).unwrap();
        let stats = m.stats();
        let blocks = stats.blocks.unwrap();
        prop_assert_eq!(blocks.block, b);
        prop_assert_eq!(blocks.total_blocks, br * bc);
        prop_assert_eq!(blocks.stored_blocks, nonempty);
        prop_assert_eq!(blocks.block_density, nonempty as f64 / (br * bc) as f64);
        prop_assert_eq!(blocks.explicit_zeros, nonempty * b * b - dense.nnz());
        let SparseMatrix::Bsr(bsr) = m else { unreachable!() };
        let rebuilt = Bsr::from_parts(
            rows, cols, b, bsr.block_row_ptr().to_vec(), bsr.block_col_idx().to_vec(),
            bsr.values().to_vec(),
        ).unwrap();
        prop_assert_eq!(&rebuilt, &bsr);
    }

    #[test]
    fn prune_2_4_keeps_the_largest_per_group(
        rows in 1usize..20, cols in 1usize..30, density in densities(),
        empty_rows: u64, seed: u64, ties: bool,
    ) {
        let mut dense = random_dense(rows, cols, density, empty_rows, seed);
        if ties {
            // Few distinct magnitudes, so equal |w| within a group are common.
            let v: Vec<f32> = dense.values().iter().map(|v| v.signum() * v.abs().ceil().min(2.0)
                * f32::from(*v != 0.0)).collect();
            dense = Dense::new(v, rows, cols).unwrap();
        }
        let pruned = prune_2_4(&dense);
        for r in 0..rows {
            for g0 in (0..cols).step_by(4) {
                let g1 = (g0 + 4).min(cols);
                let src = &dense.values()[r * cols + g0..r * cols + g1];
                let out = &pruned.values()[r * cols + g0..r * cols + g1];
                let nonzeros = src.iter().filter(|v| **v != 0.0).count();
                let kept: Vec<usize> = (0..src.len()).filter(|&i| out[i] != 0.0).collect();
                prop_assert_eq!(kept.len(), nonzeros.min(2));
                for &i in &kept {
                    prop_assert_eq!(out[i], src[i]);
                }
                // Every dropped non-zero is beaten by each kept one: larger, or equal at a
                // lower column (the documented tie rule).
                for d in (0..src.len()).filter(|&i| src[i] != 0.0 && out[i] == 0.0) {
                    for &k in &kept {
                        let (a, b) = (src[k].abs(), src[d].abs());
                        prop_assert!(a > b || (a == b && k < d), "row {} group {}", r, g0 / 4);
                    }
                }
            }
        }
        let nm = Nm24::from_masked(&Bitmask::extract(pruned.clone())).unwrap();
        let reloaded =
            Nm24::from_parts(rows, cols, nm.values().to_vec(), nm.indices().to_vec()).unwrap();
        prop_assert_eq!(&reloaded, &nm);
        prop_assert_eq!(&nm.to_dense(), &pruned);
    }
}

#[test]
fn edge_shapes_round_trip() {
    for (rows, cols, values) in [
        (1, 1, vec![0.0]),
        (1, 1, vec![-3.5]),
        (3, 5, vec![0.0; 15]),
        (33, 17, vec![1.25; 33 * 17]),
    ] {
        let dense = Dense::new(values, rows, cols).unwrap();
        for format in FORMATS {
            let m = SparseMatrix::from_dense(format, dense.clone()).unwrap();
            assert_eq!(m.to_dense(), dense, "{format} {rows}x{cols}");
        }
    }
}

#[test]
fn two_four_violation_names_the_row_and_group() {
    let mut v = vec![0.0f32; 2 * 9];
    v[9 + 4..9 + 7].copy_from_slice(&[1.0, 2.0, 3.0]);
    let dense = Dense::new(v, 2, 9).unwrap();
    let msg = message(SparseMatrix::from_dense(SparseFormat::Nm24, dense));
    assert!(msg.contains("row 1, group 1"), "{msg}");
}

#[test]
fn invalid_raw_parts_name_the_invariant() {
    let dense = |r, c| Dense::new(vec![0.0; r * c], r, c).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            message(Csr::from_parts(2, 3, vec![0, 1], vec![0], vec![1.0])),
            "row_ptr length",
        ),
        (
            message(Csr::from_parts(1, 3, vec![1, 1], vec![0], vec![1.0])),
            "row_ptr starts at 0",
        ),
        (
            message(Csr::from_parts(
                2,
                3,
                vec![0, 2, 1],
                vec![0, 1],
                vec![1.0, 2.0],
            )),
            "row_ptr monotone",
        ),
        (
            message(Csr::from_parts(1, 3, vec![0, 2], vec![0], vec![1.0])),
            "row_ptr ends at the number of indices",
        ),
        (
            message(Csr::from_parts(1, 3, vec![0, 1], vec![3], vec![1.0])),
            "column index in range",
        ),
        (
            message(Csr::from_parts(
                1,
                3,
                vec![0, 2],
                vec![1, 1],
                vec![1.0, 2.0],
            )),
            "column indices strictly increasing",
        ),
        (
            message(Csr::from_parts(1, 3, vec![0, 1], vec![0], vec![])),
            "values length",
        ),
        (
            message(Csr::from_parts(usize::MAX, 2, vec![0], vec![], vec![])),
            "shape fits in memory",
        ),
        (
            message(Bsr::from_parts(8, 8, 12, vec![0, 0], vec![], vec![])),
            "block size",
        ),
        (
            message(Bsr::from_parts(8, 8, 8, vec![0, 1], vec![0], vec![0.0; 10])),
            "values length",
        ),
        (
            message(Bsr::from_parts(8, 8, 8, vec![0, 1], vec![1], vec![0.0; 64])),
            "column index in range",
        ),
        (
            message(Bsr::from_parts(5, 5, 8, vec![0, 1], vec![0], vec![1.0; 64])),
            "padding is zero",
        ),
        (
            message(Nm24::from_parts(1, 4, vec![1.0], vec![0, 1])),
            "values length",
        ),
        (
            message(Nm24::from_parts(1, 4, vec![1.0, 2.0], vec![0])),
            "indices length",
        ),
        (
            message(Nm24::from_parts(1, 4, vec![1.0, 2.0], vec![0, 4])),
            "index in 0..4",
        ),
        (
            message(Nm24::from_parts(1, 4, vec![1.0, 2.0], vec![2, 2])),
            "indices strictly increasing within a group",
        ),
        (
            message(Nm24::from_parts(1, 3, vec![1.0, 2.0], vec![0, 3])),
            "padding is zero",
        ),
        (
            message(Bitmask::from_parts(dense(2, 3), vec![1])),
            "mask length",
        ),
        (
            message(Bitmask::from_parts(dense(1, 3), vec![0b1000])),
            "padding bits are zero",
        ),
    ];
    for (msg, invariant) in cases {
        assert!(
            msg.contains(&format!("`{invariant}`")),
            "{msg:?} should name {invariant:?}"
        );
    }
}

#[test]
fn dense_inputs_are_checked() {
    assert!(Dense::new(vec![1.0; 5], 2, 3).is_err());
    assert!(Bitmask::from_flags(Dense::new(vec![1.0; 6], 2, 3).unwrap(), &[true]).is_err());
    let f64_tensor = Tensor::zeros([2, 3], DType::F64);
    assert!(Dense::from_tensor(&f64_tensor).is_err());
    let msg = message(Dense::from_tensor(&Tensor::zeros([2, 3, 4], DType::F32)));
    assert!(msg.contains("2-D"), "{msg}");
}

#[test]
fn sparse_format_parses_names() {
    for (name, format) in [
        ("dense", SparseFormat::Dense),
        ("masked", SparseFormat::Masked),
        ("csr", SparseFormat::Csr),
        ("bsr8", SparseFormat::Bsr(8)),
        ("bsr16", SparseFormat::Bsr(16)),
        ("BSR32", SparseFormat::Bsr(32)),
        ("2:4", SparseFormat::Nm24),
    ] {
        assert_eq!(name.parse::<SparseFormat>().unwrap(), format);
        assert_eq!(format.to_string().parse::<SparseFormat>().unwrap(), format);
    }
    for bad in ["bsr12", "coo", "bsr", ""] {
        let msg = message(bad.parse::<SparseFormat>());
        assert!(
            msg.contains("valid names: dense, masked, csr, bsr8, bsr16, bsr32, 2:4"),
            "{msg}"
        );
    }
}

#[test]
fn stats_display_is_one_line() {
    let dense = Dense::new(vec![1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0], 2, 5).unwrap();
    let csr = SparseMatrix::from_dense(SparseFormat::Csr, dense.clone()).unwrap();
    assert_eq!(
        csr.stats().to_string(),
        "csr 2x5: nnz 2 (density 20.00%, sparsity 80.00%)"
    );
    let bsr = SparseMatrix::from_dense(SparseFormat::Bsr(8), dense).unwrap();
    assert_eq!(
        bsr.stats().to_string(),
        "bsr8 2x5: nnz 2 (density 20.00%, sparsity 80.00%), blocks 1/1 (block density \
         100.00%), 62 explicit zeros"
    );
}
