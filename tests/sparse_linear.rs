//! The CPU sparse Linear products against the naive reference: every weight format ×
//! forward, input gradient and weight gradient, on ragged shapes, several token counts
//! and sparsities (empty matrices and empty rows included), at every SIMD level the CPU
//! offers; the compressed-row kernel at ragged token tiles and unaligned outputs; a
//! finite-difference check that the three products are the gradient pair of
//! ⟨G, Y⟩; and argument errors.

use sparsevlp::gradcheck::{check_gradient, GradCheckConfig};
use sparsevlp::ops::cpu::SimdLevel;
use sparsevlp::rng::Rng;
use sparsevlp::sparse::random::{random_masked, Granularity};
use sparsevlp::sparse::{reference, Bitmask, Dense, SparseFormat, SparseLinear, SparseMatrix};

/// Every format under test.
const FORMATS: [SparseFormat; 7] = [
    SparseFormat::Dense,
    SparseFormat::Masked,
    SparseFormat::Csr,
    SparseFormat::Bsr(8),
    SparseFormat::Bsr(16),
    SparseFormat::Bsr(32),
    SparseFormat::Nm24,
];

/// The SIMD levels this CPU can run.
fn levels() -> Vec<SimdLevel> {
    let cpu = SimdLevel::detect();
    [SimdLevel::Avx512, SimdLevel::Avx2, SimdLevel::Scalar]
        .into_iter()
        .filter(|l| l.min(cpu) == *l)
        .collect()
}

/// N(0, 1) activations.
fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// A random weight in `format` at `sparsity`, with every third row emptied when
/// `empty_rows`. Block formats use a block pattern (full blocks) when `blocky`, else an
/// element pattern (partly filled blocks); 2:4 uses a 2:4 pattern (thinned further when
/// sparsity > 0.5, dense-ish 2:4 below).
fn weight(
    format: SparseFormat,
    [rows, cols]: [usize; 2],
    sparsity: f64,
    blocky: bool,
    empty_rows: bool,
    seed: u64,
) -> SparseMatrix {
    let masked = match format {
        SparseFormat::Nm24 => {
            let nm = random_masked(rows, cols, 0.5, Granularity::Nm24, seed).unwrap();
            let thin = random_masked(rows, cols, sparsity, Granularity::Element, seed + 1).unwrap();
            let keep: Vec<bool> = (0..rows * cols)
                .map(|i| {
                    let (r, c) = (i / cols, i % cols);
                    nm.is_kept(r, c) && (sparsity <= 0.5 || thin.is_kept(r, c))
                })
                .collect();
            Bitmask::from_flags(nm.values().clone(), &keep).unwrap()
        }
        SparseFormat::Bsr(b) if blocky => {
            random_masked(rows, cols, sparsity, Granularity::Block(b), seed).unwrap()
        }
        _ => random_masked(rows, cols, sparsity, Granularity::Element, seed).unwrap(),
    };
    let masked = if empty_rows {
        let keep: Vec<bool> = (0..rows * cols)
            .map(|i| (i / cols) % 3 != 1 && masked.is_kept(i / cols, i % cols))
            .collect();
        Bitmask::from_flags(masked.values().clone(), &keep).unwrap()
    } else {
        masked
    };
    SparseMatrix::from_masked(format, masked).unwrap()
}

/// ‖out − want‖ / ‖want‖ (0 when both are zero; infinite on any NaN).
fn rel_err(out: &[f32], want: &[f32]) -> f64 {
    assert_eq!(out.len(), want.len());
    let (mut d, mut n) = (0f64, 0f64);
    for (&o, &w) in out.iter().zip(want) {
        if o.is_nan() {
            return f64::INFINITY;
        }
        d += (o as f64 - w as f64).powi(2);
        n += (w as f64).powi(2);
    }
    if d == 0.0 {
        0.0
    } else {
        (d / n).sqrt()
    }
}

/// Checks the three products of `w` against the reference for `tokens` tokens at
/// `level`.
fn check_products(w: &SparseMatrix, tokens: usize, level: SimdLevel, what: &str) {
    let [rows, cols] = w.shape();
    let lin = SparseLinear::new(w).unwrap().with_simd(level).unwrap();
    let dense = w.to_dense();
    let x = randn(tokens * cols, 11 + tokens as u64);
    let dy = randn(tokens * rows, 13 + tokens as u64);
    let what = format!("{what} {} tokens {tokens} at {}", w.format(), level.name());

    let mut y = vec![f32::NAN; tokens * rows];
    lin.forward(&x, tokens, &mut y).unwrap();
    let e = rel_err(&y, &reference::forward(&dense, &x, tokens).unwrap());
    assert!(e <= 1e-5, "{what}: forward relative error {e}");

    let mut dx = vec![f32::NAN; tokens * cols];
    lin.backward_input(&dy, tokens, &mut dx).unwrap();
    let e = rel_err(
        &dx,
        &reference::backward_input(&dense, &dy, tokens).unwrap(),
    );
    assert!(e <= 1e-5, "{what}: backward_input relative error {e}");

    let g = lin.weight_grad(&x, &dy, tokens).unwrap();
    assert_same_pattern(w, &g, &what);
    let want = reference::weight_grad(w, &x, &dy, tokens).unwrap();
    let e = rel_err(g.to_dense().values(), want.values());
    assert!(e <= 1e-5, "{what}: weight_grad relative error {e}");
}

/// The gradient has W's format and stored pattern.
fn assert_same_pattern(w: &SparseMatrix, g: &SparseMatrix, what: &str) {
    let same = match (w, g) {
        (SparseMatrix::Dense(a), SparseMatrix::Dense(b)) => a.shape() == b.shape(),
        (SparseMatrix::Masked(a), SparseMatrix::Masked(b)) => a.mask() == b.mask(),
        (SparseMatrix::Csr(a), SparseMatrix::Csr(b)) => {
            a.row_ptr() == b.row_ptr() && a.col_idx() == b.col_idx()
        }
        (SparseMatrix::Bsr(a), SparseMatrix::Bsr(b)) => {
            a.block_row_ptr() == b.block_row_ptr() && a.block_col_idx() == b.block_col_idx()
        }
        (SparseMatrix::NM(a), SparseMatrix::NM(b)) => a.indices() == b.indices(),
        _ => false,
    };
    assert!(same, "{what}: weight_grad changed the format or pattern");
}

#[test]
fn products_match_the_reference_for_every_format_shape_sparsity_and_level() {
    let shapes = [[37, 70], [64, 96], [33, 8], [5, 130]];
    for (si, &shape) in shapes.iter().enumerate() {
        for format in FORMATS {
            for (k, &sparsity) in [0.0, 0.5, 0.9, 1.0].iter().enumerate() {
                let seed = (si * 100 + k) as u64;
                let mut weights = vec![
                    weight(format, shape, sparsity, true, false, seed),
                    weight(format, shape, sparsity, true, true, seed),
                ];
                if matches!(format, SparseFormat::Bsr(_)) {
                    weights.push(weight(format, shape, sparsity, false, false, seed));
                }
                for w in &weights {
                    for level in levels() {
                        for tokens in [1, 5, 13, 20, 64] {
                            check_products(w, tokens, level, &format!("{shape:?} s={sparsity}"));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn products_are_right_at_the_layer_shape_for_decode_and_prefill() {
    for format in [
        SparseFormat::Dense,
        SparseFormat::Csr,
        SparseFormat::Bsr(32),
    ] {
        let w = weight(format, [96, 768], 0.9, true, false, 5);
        for tokens in [8, 77] {
            check_products(&w, tokens, SimdLevel::detect(), "layer shape");
        }
    }
}

/// `run(out)` into a slice `offset` floats into a buffer of sentinels: the result,
/// after checking that nothing outside the slice changed.
fn run_at(len: usize, offset: usize, what: &str, run: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut buf = vec![-7.5f32; offset + len + 32];
    run(&mut buf[offset..offset + len]);
    let outside = buf[..offset].iter().chain(&buf[offset + len..]);
    assert!(
        outside.into_iter().all(|&v| v == -7.5),
        "{what}: wrote outside the output"
    );
    buf[offset..offset + len].to_vec()
}

#[test]
fn compressed_rows_handle_ragged_tiles_and_unaligned_outputs() {
    // Token counts around the 16/32/64-token tiles, output widths around the 16-row
    // transpose blocks, every third row empty, row 2 fully dense (CSR), and outputs
    // starting at several float offsets within a cache line. 600 rows make several
    // task ranges (at most 512 rows each), 128-row output blocks and a ragged last
    // transpose block; 2100 rows many ranges; 400 columns several column panels (the
    // first one overwrites the accumulators, the last leaves block by block).
    let shapes = [
        ([16, 40], 1),
        ([47, 33], 2),
        ([130, 96], 3),
        ([600, 24], 4),
        ([2100, 24], 5),
        ([70, 400], 6),
    ];
    for (shape, seed) in shapes {
        let [rows, cols] = shape;
        let m = random_masked(rows, cols, 0.8, Granularity::Element, seed).unwrap();
        let keep: Vec<bool> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                r == 2 || (r % 3 != 1 && m.is_kept(r, c))
            })
            .collect();
        let csr = Bitmask::from_flags(m.values().clone(), &keep).unwrap();
        let weights = [
            SparseMatrix::from_masked(SparseFormat::Csr, csr).unwrap(),
            weight(SparseFormat::Nm24, shape, 0.8, true, true, seed),
        ];
        for w in &weights {
            let dense = w.to_dense();
            for level in levels() {
                let lin = SparseLinear::new(w).unwrap().with_simd(level).unwrap();
                for tokens in [1, 15, 17, 31, 33, 63, 65, 513] {
                    let x = randn(tokens * cols, tokens as u64);
                    let dy = randn(tokens * rows, 1 + tokens as u64);
                    let want_y = reference::forward(&dense, &x, tokens).unwrap();
                    let want_dx = reference::backward_input(&dense, &dy, tokens).unwrap();
                    for offset in [0, 3, 8, 15] {
                        let what = format!(
                            "{} {shape:?} tokens {tokens} offset {offset} at {}",
                            w.format(),
                            level.name()
                        );
                        let y = run_at(tokens * rows, offset, &what, |y| {
                            lin.forward(&x, tokens, y).unwrap()
                        });
                        let e = rel_err(&y, &want_y);
                        assert!(e <= 1e-5, "{what}: forward relative error {e}");
                        let dx = run_at(tokens * cols, offset, &what, |dx| {
                            lin.backward_input(&dy, tokens, dx).unwrap()
                        });
                        let e = rel_err(&dx, &want_dx);
                        assert!(e <= 1e-5, "{what}: backward_input relative error {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn zero_tokens_and_empty_matrices_are_fine() {
    for format in FORMATS {
        for shape in [[0, 5], [4, 0], [3, 4]] {
            let w = weight(format, shape, 0.5, true, false, 1);
            check_products(&w, 0, SimdLevel::detect(), "degenerate");
            check_products(&w, 3, SimdLevel::detect(), "degenerate");
        }
    }
}

/// ⟨G, forward(x; W)⟩ in f64.
fn loss(w: &SparseMatrix, x: &[f64], g: &[f32], tokens: usize) -> f64 {
    let lin = SparseLinear::new(w).unwrap();
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut y = vec![f32::NAN; g.len()];
    lin.forward(&x, tokens, &mut y).unwrap();
    y.iter().zip(g).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// W with its stored values (in pattern order) replaced, same format and pattern.
fn with_stored(w: &SparseMatrix, pattern: &[bool], stored: &[f64]) -> SparseMatrix {
    let [rows, cols] = w.shape();
    let mut it = stored.iter();
    let values = pattern
        .iter()
        .map(|&p| if p { *it.next().unwrap() as f32 } else { 0.0 })
        .collect();
    let masked = Bitmask::from_flags(Dense::new(values, rows, cols).unwrap(), pattern).unwrap();
    SparseMatrix::from_masked(w.format(), masked).unwrap()
}

/// Finite differences of ⟨G, Y⟩ (bilinear, so a large step is exact up to f32 rounding).
const FD: GradCheckConfig = GradCheckConfig {
    eps: 0.5,
    rtol: 1e-4,
    atol: 1e-4,
    max_entries: 0,
};

/// The analytic input and stored-weight gradients of ⟨G, Y⟩ for `w`.
fn analytic(w: &SparseMatrix, x: &[f64], g: &[f32], tokens: usize) -> (Vec<f64>, Vec<f64>) {
    let [_, cols] = w.shape();
    let lin = SparseLinear::new(w).unwrap();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut dx = vec![f32::NAN; tokens * cols];
    lin.backward_input(g, tokens, &mut dx).unwrap();
    let dw = lin.weight_grad(&x32, g, tokens).unwrap().to_dense();
    let pattern = reference::stored_pattern(w);
    let dw = dw
        .values()
        .iter()
        .zip(&pattern)
        .filter(|(_, &p)| p)
        .map(|(&v, _)| v as f64)
        .collect();
    (dx.iter().map(|&v| v as f64).collect(), dw)
}

/// Runs both finite-difference checks; `mutate` perturbs the analytic gradients first.
fn gradcheck(
    w: &SparseMatrix,
    tokens: usize,
    mutate: impl Fn(&mut [f64], &mut [f64]),
) -> Result<(), String> {
    let [rows, cols] = w.shape();
    let x: Vec<f64> = randn(tokens * cols, 3).iter().map(|&v| v as f64).collect();
    let g = randn(tokens * rows, 4);
    let (mut dx, mut dw) = analytic(w, &x, &g, tokens);
    mutate(&mut dx, &mut dw);
    let name = format!("{}", w.format());
    check_gradient(
        &format!("{name} dx"),
        &x,
        &dx,
        |x| loss(w, x, &g, tokens),
        FD,
    )?;
    let pattern = reference::stored_pattern(w);
    let dense = w.to_dense();
    let stored: Vec<f64> = dense
        .values()
        .iter()
        .zip(&pattern)
        .filter(|(_, &p)| p)
        .map(|(&v, _)| v as f64)
        .collect();
    check_gradient(
        &format!("{name} dW"),
        &stored,
        &dw,
        |s| loss(&with_stored(w, &pattern, s), &x, &g, tokens),
        FD,
    )
}

#[test]
fn backward_products_are_the_gradient_of_the_forward() {
    for format in FORMATS {
        let w = weight(format, [19, 22], 0.5, false, false, 9);
        gradcheck(&w, 3, |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_gradient_check_rejects_a_one_percent_error() {
    for format in [SparseFormat::Csr, SparseFormat::Bsr(8)] {
        let w = weight(format, [19, 22], 0.5, false, false, 9);
        assert!(gradcheck(&w, 3, |dx, _| dx[7] *= 1.01).is_err());
        assert!(gradcheck(&w, 3, |_, dw| dw[5] *= 1.01).is_err());
    }
}

#[test]
fn wrong_lengths_are_errors_naming_the_argument() {
    let w = weight(SparseFormat::Csr, [6, 10], 0.5, false, false, 2);
    let lin = SparseLinear::new(&w).unwrap();
    let (x, mut y) = (vec![0.5f32; 30], vec![0f32; 18]);
    let err = lin.forward(&x[..29], 3, &mut y).unwrap_err().to_string();
    assert!(
        err.contains("x has 29 elements") && err.contains("= 30"),
        "{err}"
    );
    let err = lin.forward(&x, 3, &mut y[..17]).unwrap_err().to_string();
    assert!(err.contains("y has 17 elements"), "{err}");
    let err = lin
        .backward_input(&y, 3, &mut [0f32; 31])
        .unwrap_err()
        .to_string();
    assert!(err.contains("dx has 31 elements"), "{err}");
    let err = lin.weight_grad(&x, &y[..5], 3).unwrap_err().to_string();
    assert!(err.contains("dy has 5 elements"), "{err}");
    assert!(lin.forward(&x, usize::MAX, &mut y).is_err());
}
