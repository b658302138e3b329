//! The sparse GPU kernels (kernels/bsr_tc.cu, csr_spmm.cu, csr_sddmm.cu, sparse_layout.cu
//! through `sparsevlp::gpu::sparse::GpuSparseLinear`) against CPU references, on every
//! test device: the emulator always, a CUDA GPU when one is usable.
//!
//! References come from the dense matrix (`to_dense`) and `ops::matmul` in f64:
//! `Y = X·Wᵀ`, `dX = dY·W`, and `dYᵀ·X` sampled at the format's storage positions for the
//! weight gradient. Inputs are random (never zeros), shapes ragged (not multiples of any
//! tile or block), matrices have empty rows, empty and fully dense blocks, at sparsity
//! 0, 0.5, 0.9 and 1. The sparse layer poisons every output and temporary on the emulator
//! (NaN), so an unwritten element fails the NaN check. f32 paths (CSR) must be within
//! 1e-5; bf16 paths (BSR, 2:4) within 1e-2 of the exact reference and 1e-5 of the
//! reference on bf16-rounded inputs. On the emulator both thread schedules must give
//! identical bits. The backward passes of every format also pass a finite-difference
//! gradient check (on inputs exact in bf16).

mod common;

use common::gpu::{check, on_devices, randn, round_half, t64, uniform, Agree, TOL_F32, TOL_HALF};
use half::bf16;
use sparsevlp::gpu::dense::HalfType;
use sparsevlp::gpu::sparse::csr::subwarp_width;
use sparsevlp::gpu::sparse::GpuSparseLinear;
use sparsevlp::gpu::GpuContext;
use sparsevlp::gradcheck::{check_gradient, GradCheckConfig};
use sparsevlp::ops;
use sparsevlp::sparse::{prune_2_4, Bsr, Csr, Dense, Nm24, SparseFormat, SparseMatrix};
use sparsevlp::{DType, Device, Error, Result, Tensor};

/// The sparsities every format is tested at.
const SPARSITIES: [f64; 4] = [0.0, 0.5, 0.9, 1.0];

/// (rows, cols, leading dims of the activations): ragged everywhere, one aligned case,
/// one 3-D activation, one with more tokens than a token strip.
const SHAPES: [(usize, usize, &[usize]); 4] = [
    (37, 45, &[13]),
    (48, 64, &[16]),
    (19, 70, &[2, 5]),
    (33, 18, &[67]),
];

/// A random `[rows, cols]` weight in `format` at roughly `sparsity`, never zero where kept.
/// CSR: element pattern with two forced empty rows. BSR: block pattern with empty, fully
/// dense and half-filled blocks. 2:4: the element pattern pruned to 2:4.
fn random_matrix(
    format: SparseFormat,
    rows: usize,
    cols: usize,
    sparsity: f64,
    seed: u64,
) -> SparseMatrix {
    let values = uniform(rows * cols, 0.5, 1.5, seed);
    let signs = uniform(rows * cols, -1.0, 1.0, seed + 1);
    let coin = uniform(rows * cols, 0.0, 1.0, seed + 2);
    let block = match format {
        SparseFormat::Bsr(b) => b,
        _ => 1,
    };
    let bcols = cols.div_ceil(block);
    let block_coin = uniform(rows.div_ceil(block) * bcols, 0.0, 1.0, seed + 3);
    let dense: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let keep = match format {
                SparseFormat::Bsr(_) => {
                    let u = block_coin[(r / block) * bcols + c / block] as f64;
                    // u < sparsity: empty; the upper half of the rest: fully dense.
                    u >= sparsity && (u >= (1.0 + sparsity) / 2.0 || coin[i] < 0.5)
                }
                SparseFormat::Csr => (coin[i] as f64) >= sparsity && r != 1 && r + 2 != rows,
                _ => (coin[i] as f64) >= sparsity,
            };
            if keep {
                values[i] * signs[i].signum()
            } else {
                0.0
            }
        })
        .collect();
    let mut dense = Dense::new(dense, rows, cols).unwrap();
    if format == SparseFormat::Nm24 {
        dense = prune_2_4(&dense);
    }
    SparseMatrix::from_dense(format, dense).unwrap()
}

/// `full [rows, cols]` (row-major) read at the storage positions of `m`: CSR entries, BSR
/// block elements (0 at padding), 2:4 slots (0 at padded columns).
fn at_storage(m: &SparseMatrix, full: &[f64]) -> Vec<f64> {
    let [rows, cols] = m.shape();
    let get = |r: usize, c: usize| {
        if r < rows && c < cols {
            full[r * cols + c]
        } else {
            0.0
        }
    };
    match m {
        SparseMatrix::Csr(c) => c
            .row_ptr()
            .windows(2)
            .enumerate()
            .flat_map(|(r, w)| (w[0] as usize..w[1] as usize).map(move |e| (r, e)))
            .map(|(r, e)| get(r, c.col_idx()[e] as usize))
            .collect(),
        SparseMatrix::Bsr(b) => {
            let n = b.block();
            let mut out = Vec::new();
            for (bi, w) in b.block_row_ptr().windows(2).enumerate() {
                for k in w[0] as usize..w[1] as usize {
                    let bj = b.block_col_idx()[k] as usize;
                    out.extend((0..n * n).map(|e| get(bi * n + e / n, bj * n + e % n)));
                }
            }
            out
        }
        SparseMatrix::NM(nm) => {
            let per_row = cols.div_ceil(4) * 2;
            nm.indices()
                .iter()
                .enumerate()
                .map(|(s, &i)| get(s / per_row, (s % per_row) / 2 * 4 + i as usize))
                .collect()
        }
        _ => unreachable!("only sparse formats are tested"),
    }
}

/// The f64 references of one case: (Y, dX, dW at storage) from the given inputs.
fn references(m: &SparseMatrix, w: &[f32], x: &[f32], dy: &[f32], tokens: usize) -> [Vec<f64>; 3] {
    let [rows, cols] = m.shape();
    let (wt, xt, dyt) = (
        t64(w, &[rows, cols]),
        t64(x, &[tokens, cols]),
        t64(dy, &[tokens, rows]),
    );
    let mm =
        |a: &Tensor, b: &Tensor, ta, tb| ops::matmul::matmul(a, b, ta, tb).unwrap().to_vec_f64();
    [
        mm(&xt, &wt, false, true),
        mm(&dyt, &wt, false, false),
        at_storage(m, &mm(&dyt, &xt, true, false)),
    ]
}

/// A tensor of `data` with dims `dims` on `device`, as f32 or rounded to bf16.
fn on(device: Device, data: &[f32], dims: &[usize], dtype: DType) -> Result<Tensor> {
    let t = match dtype {
        DType::BF16 => {
            let v: Vec<bf16> = data.iter().map(|&x| bf16::from_f32(x)).collect();
            Tensor::from_vec(v, dims.to_vec())?
        }
        _ => Tensor::from_vec(data.to_vec(), dims.to_vec())?,
    };
    t.to_device(device)
}

/// Runs forward, backward_input and weight_grad of `m` on every device with activations
/// of `dtype` and checks them against the references (`rounded`: the references on the
/// bf16-rounded inputs, for the tensor-core formats).
#[allow(clippy::too_many_arguments)]
fn check_case(
    name: &str,
    m: &SparseMatrix,
    lead: &[usize],
    x: &[f32],
    dy: &[f32],
    dtype: DType,
    exact: &[Vec<f64>; 3],
    rounded: Option<&[Vec<f64>; 3]>,
) -> Vec<Vec<f32>> {
    let [rows, cols] = m.shape();
    let xdims = [lead, &[cols]].concat();
    let dydims = [lead, &[rows]].concat();
    let name = format!("{name} ({dtype} activations)");
    let mut results = Vec::new();
    for (dev, out) in on_devices(&name, Agree::Exactly, |ctx: &GpuContext| {
        let layer = GpuSparseLinear::new(m, ctx.device())?;
        let xg = on(ctx.device(), x, &xdims, dtype)?;
        let dyg = on(ctx.device(), dy, &dydims, dtype)?;
        let y = layer.forward(&xg)?;
        let dx = layer.backward_input(&dyg)?;
        let dw = layer.weight_grad(&xg, &dyg)?;
        assert_eq!(y.dims(), &dydims[..], "{name}: Y shape");
        assert_eq!(dx.dims(), &xdims[..], "{name}: dX shape");
        assert_eq!(dw.dims(), &[layer.grad_len()], "{name}: dW shape");
        Ok(vec![y.to_vec_f32(), dx.to_vec_f32(), dw.to_vec_f32()])
    }) {
        for (i, what) in ["Y", "dX", "dW"].iter().enumerate() {
            let tol = if rounded.is_some() { TOL_HALF } else { TOL_F32 };
            check(&format!("{name} {what}"), dev, &out[i], &exact[i], tol);
            if let Some(r) = rounded {
                let what = format!("{name} {what} (rounded inputs)");
                check(&what, dev, &out[i], &r[i], 1e-5);
            }
        }
        results = out;
    }
    results
}

/// Every shape and sparsity of `format` against the CPU references.
fn format_matches_cpu(format: SparseFormat, seed: u64) {
    let tensor_cores = format != SparseFormat::Csr;
    let mut seed = seed;
    for &(rows, cols, lead) in &SHAPES {
        let tokens: usize = lead.iter().product();
        for sparsity in SPARSITIES {
            seed += 10;
            let m = random_matrix(format, rows, cols, sparsity, seed);
            let w = m.to_dense().into_values();
            let x = randn(tokens * cols, 1.0, seed + 4);
            let dy = randn(tokens * rows, 1.0, seed + 5);
            let exact = references(&m, &w, &x, &dy, tokens);
            let name = format!("{format} {rows}x{cols} tokens {lead:?} sparsity {sparsity}");
            if tensor_cores {
                let round = |v: &[f32]| round_half(v, HalfType::Bf16).1;
                let rounded = references(&m, &round(&w), &round(&x), &round(&dy), tokens);
                let bf = check_case(
                    &name,
                    &m,
                    lead,
                    &x,
                    &dy,
                    DType::BF16,
                    &exact,
                    Some(&rounded),
                );
                let f = check_case(&name, &m, lead, &x, &dy, DType::F32, &exact, Some(&rounded));
                assert!(
                    bf.iter()
                        .flatten()
                        .zip(f.iter().flatten())
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: f32 activations (rounded on the device) differ from bf16 ones"
                );
            } else {
                check_case(&name, &m, lead, &x, &dy, DType::F32, &exact, None);
            }
        }
    }
}

#[test]
fn csr_matches_cpu() {
    format_matches_cpu(SparseFormat::Csr, 100);
}

#[test]
fn bsr16_matches_cpu() {
    format_matches_cpu(SparseFormat::Bsr(16), 200);
}

#[test]
fn bsr32_matches_cpu() {
    format_matches_cpu(SparseFormat::Bsr(32), 300);
}

#[test]
fn nm24_matches_cpu() {
    format_matches_cpu(SparseFormat::Nm24, 400);
}

#[test]
fn csr_subwarp_widths_match_cpu() {
    // Token counts that pick each subwarp width (8, 16, 32 lanes), with long rows so the
    // width is set by the strip, and vector and scalar tails.
    let (rows, cols) = (21, 40);
    for (k, tokens) in [3usize, 31, 50, 130].into_iter().enumerate() {
        let seed = 500 + 10 * k as u64;
        let m = random_matrix(SparseFormat::Csr, rows, cols, 0.1, seed);
        let w = m.to_dense().into_values();
        let x = randn(tokens * cols, 1.0, seed + 4);
        let dy = randn(tokens * rows, 1.0, seed + 5);
        let exact = references(&m, &w, &x, &dy, tokens);
        let name = format!(
            "csr tokens {tokens} (subwarp {})",
            subwarp_width(tokens, 36.0)
        );
        check_case(&name, &m, &[tokens], &x, &dy, DType::F32, &exact, None);
    }
    assert_eq!(subwarp_width(3, 36.0), 8);
    assert_eq!(subwarp_width(50, 36.0), 16);
    assert_eq!(subwarp_width(130, 36.0), 32);
    assert_eq!(subwarp_width(130, 3.0), 8, "short rows narrow the subwarp");
}

/// Multiples of 1/8 (|v| ≤ 4.125 stays exact in bf16, and so do their ± 1/8 steps).
fn eighths(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&x| (x * 8.0).round().clamp(-32.0, 32.0) / 8.0)
        .collect()
}

/// `m` with its stored values replaced by `values` (same pattern, storage order).
fn with_values(m: &SparseMatrix, values: Vec<f32>) -> SparseMatrix {
    let [rows, cols] = m.shape();
    match m {
        SparseMatrix::Csr(c) => SparseMatrix::Csr(
            Csr::from_parts(
                rows,
                cols,
                c.row_ptr().to_vec(),
                c.col_idx().to_vec(),
                values,
            )
            .unwrap(),
        ),
        SparseMatrix::Bsr(b) => SparseMatrix::Bsr(
            Bsr::from_parts(
                rows,
                cols,
                b.block(),
                b.block_row_ptr().to_vec(),
                b.block_col_idx().to_vec(),
                values,
            )
            .unwrap(),
        ),
        SparseMatrix::NM(n) => {
            SparseMatrix::NM(Nm24::from_parts(rows, cols, values, n.indices().to_vec()).unwrap())
        }
        _ => unreachable!("only sparse formats are tested"),
    }
}

/// The stored values of `m` in storage order.
fn stored_values(m: &SparseMatrix) -> Vec<f32> {
    match m {
        SparseMatrix::Csr(c) => c.values().to_vec(),
        SparseMatrix::Bsr(b) => b.values().to_vec(),
        SparseMatrix::NM(n) => n.values().to_vec(),
        _ => unreachable!("only sparse formats are tested"),
    }
}

/// Finite differences of `loss = Σ Y ∘ R` through the emulator against `backward_input`
/// and `weight_grad`, for every format. X, W and R are multiples of 1/8 and the step is
/// 1/8, so every input, perturbed or not, is exact in bf16 and every product and sum is
/// exact in f32: the loss is linear in X and in W, central differences are exact, and the
/// tolerance is tight. Shapes are multiples of the block size (no padding to perturb).
#[test]
fn gradients_match_finite_differences() {
    let (rows, cols, tokens) = (64, 64, 5);
    let dev = Device::Emu;
    let cfg = GradCheckConfig {
        eps: 0.125,
        rtol: 1e-6,
        atol: 1e-6,
        max_entries: 48,
    };
    let formats = [
        SparseFormat::Csr,
        SparseFormat::Bsr(16),
        SparseFormat::Bsr(32),
        SparseFormat::Nm24,
    ];
    for (k, format) in formats.into_iter().enumerate() {
        let seed = 600 + 10 * k as u64;
        let m0 = random_matrix(format, rows, cols, 0.5, seed);
        let m = with_values(&m0, eighths(&stored_values(&m0)));
        let x = eighths(&randn(tokens * cols, 1.5, seed + 1));
        let r = eighths(&randn(tokens * rows, 1.5, seed + 2));
        let loss_of = |layer: &GpuSparseLinear, x: &[f32]| -> f64 {
            let xg = on(dev, x, &[tokens, cols], DType::F32).unwrap();
            let y = layer.forward(&xg).unwrap().to_vec_f32();
            y.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
        };
        let layer = GpuSparseLinear::new(&m, dev).unwrap();
        let rg = on(dev, &r, &[tokens, rows], DType::F32).unwrap();
        let xg = on(dev, &x, &[tokens, cols], DType::F32).unwrap();
        let dx = layer.backward_input(&rg).unwrap().to_vec_f64();
        let dw = layer.weight_grad(&xg, &rg).unwrap().to_vec_f64();
        let widen = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        check_gradient(
            &format!("{format} dX"),
            &widen(&x),
            &dx,
            |v| loss_of(&layer, &narrow(v)),
            cfg,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        check_gradient(
            &format!("{format} dW"),
            &widen(&stored_values(&m)),
            &dw,
            |v| {
                let layer = GpuSparseLinear::new(&with_values(&m, narrow(v)), dev).unwrap();
                loss_of(&layer, &x)
            },
            cfg,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The error message of `r`, which must be an error.
fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_combinations_are_clear_errors() {
    let dev = Device::Emu;
    let dense = Dense::new(randn(6 * 10, 1.0, 700), 6, 10).unwrap();
    for format in [SparseFormat::Dense, SparseFormat::Masked] {
        let m = SparseMatrix::from_dense(format, dense.clone()).unwrap();
        let e = message(GpuSparseLinear::new(&m, dev));
        assert!(e.contains("no sparse GPU kernel"), "{format}: {e}");
    }
    let bsr8 = SparseMatrix::from_dense(SparseFormat::Bsr(8), dense.clone()).unwrap();
    let e = message(GpuSparseLinear::new(&bsr8, dev));
    assert!(e.contains("blocks of 8"), "{e}");

    let csr = SparseMatrix::from_dense(SparseFormat::Csr, dense.clone()).unwrap();
    let layer = GpuSparseLinear::new(&csr, dev).unwrap();
    assert_eq!(layer.format(), SparseFormat::Csr);
    assert_eq!(layer.shape(), [6, 10]);
    let x_bf16 = on(dev, &randn(30, 1.0, 701), &[3, 10], DType::BF16).unwrap();
    assert!(matches!(
        layer.forward(&x_bf16),
        Err(Error::UnsupportedDType { .. })
    ));
    let wrong = on(dev, &randn(27, 1.0, 702), &[3, 9], DType::F32).unwrap();
    assert!(message(layer.forward(&wrong)).contains("must end in 10"));
    let x_cpu = Tensor::from_vec(randn(30, 1.0, 703), vec![3, 10]).unwrap();
    assert!(message(layer.forward(&x_cpu)).contains("lives on cpu"));
    let x = on(dev, &randn(30, 1.0, 704), &[3, 10], DType::F32).unwrap();
    let dy = on(dev, &randn(24, 1.0, 705), &[4, 6], DType::F32).unwrap();
    assert!(message(layer.weight_grad(&x, &dy)).contains("same leading dimensions"));

    let bsr = SparseMatrix::from_dense(SparseFormat::Bsr(16), dense).unwrap();
    let layer = GpuSparseLinear::new(&bsr, dev).unwrap();
    let x_f64 = Tensor::from_vec(vec![1.0f64; 30], vec![3, 10])
        .unwrap()
        .to_device(dev)
        .unwrap();
    assert!(matches!(
        layer.forward(&x_f64),
        Err(Error::UnsupportedDType { .. })
    ));
}
