//! Block-sparse attention: the layout constructors, and the forward and backward passes
//! against a naive element-mask reference, dense attention and finite differences.

mod common;

use common::{check_qkv_gradients, randn};
use sparsevlp::ops::attention::attention;
use sparsevlp::ops::block_sparse_attention::{
    block_sparse_attention, block_sparse_attention_backward,
};
use sparsevlp::sparse::attention::{BlockGrid, BlockLayout, ModalityBlocks};
use sparsevlp::{DType, Tensor};

fn grid(block: usize, tq: usize, tk: usize) -> BlockGrid {
    BlockGrid::new(block, tq, tk).unwrap()
}

/// The block-level pattern (true = active) of a layout, `q_blocks × k_blocks`.
fn block_pattern(l: &BlockLayout) -> Vec<Vec<bool>> {
    let g = l.grid();
    (0..g.q_blocks())
        .map(|qb| {
            (0..g.k_blocks())
                .map(|kb| l.key_blocks(qb).contains(&kb))
                .collect()
        })
        .collect()
}

fn assert_diagonal_kept(l: &BlockLayout) {
    let g = l.grid();
    for qb in 0..g.q_blocks() {
        assert!(l.key_blocks(qb).contains(&g.diagonal(qb)), "row {qb}");
    }
}

fn assert_sorted_rows(l: &BlockLayout) {
    for qb in 0..l.grid().q_blocks() {
        assert!(l.key_blocks(qb).windows(2).all(|w| w[0] < w[1]), "row {qb}");
    }
}

#[test]
fn structured_layouts_have_their_patterns() {
    let g = grid(4, 20, 20); // 5 x 5 blocks
    let dense = BlockLayout::dense(g);
    assert_eq!(dense.active_blocks(), 25);
    assert_eq!(dense.density(), 1.0);
    assert!(dense.to_dense_mask().iter().all(|&x| x));

    let local = BlockLayout::local(g, 1);
    let want: Vec<Vec<bool>> = (0..5)
        .map(|i: i32| (0..5).map(|j: i32| (i - j).abs() <= 1).collect())
        .collect();
    assert_eq!(block_pattern(&local), want);
    assert_eq!(BlockLayout::local(g, 0).active_blocks(), 5);
    assert_eq!(BlockLayout::local(g, 9).active_blocks(), 25);

    let global = BlockLayout::global(g, 2).unwrap();
    let want: Vec<Vec<bool>> = (0..5)
        .map(|i| (0..5).map(|j| i < 2 || j < 2).collect())
        .collect();
    assert_eq!(block_pattern(&global), want);
    assert_eq!(BlockLayout::global(g, 99).unwrap(), dense);
    assert!(BlockLayout::global(g, 0).is_err());

    // Cross-attention grid: the diagonal is proportional.
    let cross = grid(4, 8, 20); // 2 x 5 blocks
    assert_eq!(cross.diagonal(0), 0);
    assert_eq!(cross.diagonal(1), 2);
    assert_eq!(
        block_pattern(&BlockLayout::local(cross, 0)),
        vec![
            vec![true, false, false, false, false],
            vec![false, false, true, false, false]
        ]
    );
    assert_diagonal_kept(&local);
    for l in [&local, &global] {
        assert_sorted_rows(l);
    }
}

#[test]
fn random_layouts_are_seeded_and_keep_the_diagonal() {
    let g = grid(32, 70, 300); // ragged: 3 x 10 blocks
    let a = BlockLayout::random(g, 3, 7);
    assert_eq!(a, BlockLayout::random(g, 3, 7));
    assert_ne!(a, BlockLayout::random(g, 3, 8));
    for qb in 0..3 {
        assert_eq!(a.key_blocks(qb).len(), 4, "diagonal + 3 distinct others");
    }
    assert_sorted_rows(&a);
    assert_diagonal_kept(&a);
    assert_eq!(BlockLayout::random(g, 50, 1), BlockLayout::dense(g));

    let bb = BlockLayout::bigbird(g, 1, 1, 2, 3);
    let parts = [
        BlockLayout::local(g, 1),
        BlockLayout::global(g, 1).unwrap(),
        BlockLayout::random(g, 2, 3),
    ];
    let want = parts[0].union(&parts[1]).unwrap().union(&parts[2]).unwrap();
    assert_eq!(bb, want);
    assert_sorted_rows(&bb);
    assert_diagonal_kept(&bb);
}

#[test]
fn random_density_is_exact_to_the_block() {
    for (block, t) in [(64, 1024), (32, 1024), (32, 70), (16, 200)] {
        let g = grid(block, t, t);
        let total = g.q_blocks() * g.k_blocks();
        for step in 1..=10 {
            let density = step as f64 / 10.0;
            let want = (density * total as f64).round() as usize;
            if want < g.q_blocks() {
                assert!(BlockLayout::random_density(g, density, 5).is_err());
                continue;
            }
            let l = BlockLayout::random_density(g, density, 5).unwrap();
            assert_eq!(
                l.active_blocks(),
                want,
                "block {block} t {t} density {density}"
            );
            assert_diagonal_kept(&l);
            assert_sorted_rows(&l);
        }
    }
    let g = grid(64, 1024, 1024);
    for bad in [0.01, 1.5, f64::NAN, -0.2] {
        let err = BlockLayout::random_density(g, bad, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("density"), "{err}");
    }
}

#[test]
fn modality_layout_is_exact_at_the_element_level() {
    let combos = [
        (true, true, false, false),
        (true, true, true, false),
        (false, true, true, true),
        (true, false, false, true),
        (false, false, true, false),
    ];
    for (text_len, image_len, block) in [(20, 50, 16), (32, 32, 16), (5, 9, 4), (0, 12, 8)] {
        for (tt, ii, ti, it) in combos {
            let allowed = ModalityBlocks {
                text_text: tt,
                image_image: ii,
                text_image: ti,
                image_text: it,
            };
            let l = BlockLayout::modality(text_len, image_len, block, allowed).unwrap();
            let t = text_len + image_len;
            let mask = l.to_dense_mask();
            for i in 0..t {
                for j in 0..t {
                    let want = allowed.allows(i < text_len, j < text_len);
                    assert_eq!(
                        mask[i * t + j],
                        want,
                        "{text_len}+{image_len} {allowed:?} ({i},{j})"
                    );
                }
            }
            // A block is active only if it holds an allowed pair.
            let g = l.grid();
            for qb in 0..g.q_blocks() {
                for &kb in l.key_blocks(qb) {
                    let any = g
                        .q_range(qb)
                        .any(|i| g.k_range(kb).any(|j| mask[i * t + j]));
                    assert!(any, "block ({qb},{kb}) is active but empty");
                }
            }
        }
    }
    // Text and image aligned to the block: no element masks, 2x2 block pattern.
    let aligned = ModalityBlocks {
        text_text: true,
        image_image: true,
        text_image: false,
        image_text: false,
    };
    let l = BlockLayout::modality(32, 32, 16, aligned).unwrap();
    assert_eq!(l.active_blocks(), 8);
    assert!((0..l.active_blocks()).all(|e| l.element_mask(e).is_none()));
    assert!(BlockLayout::modality(3, 4, 0, aligned).is_err());
    assert!(BlockLayout::modality(0, 0, 8, aligned).is_err());
}

#[test]
fn union_is_the_elementwise_or() {
    let g = grid(4, 14, 14);
    let modality = BlockLayout::modality(
        6,
        8,
        4,
        ModalityBlocks {
            text_text: true,
            image_image: false,
            text_image: false,
            image_text: true,
        },
    )
    .unwrap();
    for other in [
        BlockLayout::local(g, 0),
        BlockLayout::random(g, 1, 4),
        modality.clone(),
    ] {
        let u = modality.union(&other).unwrap();
        let want: Vec<bool> = modality
            .to_dense_mask()
            .iter()
            .zip(other.to_dense_mask())
            .map(|(&a, b)| a || b)
            .collect();
        assert_eq!(u.to_dense_mask(), want);
        assert_sorted_rows(&u);
    }
    assert_eq!(modality.union(&modality).unwrap(), modality);
    let err = BlockLayout::dense(g)
        .union(&BlockLayout::dense(grid(4, 14, 15)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("grids differ"), "{err}");
}

#[test]
fn grid_rejects_bad_parameters() {
    assert!(BlockGrid::new(0, 8, 8)
        .unwrap_err()
        .to_string()
        .contains("block size"));
    assert!(BlockGrid::new(4, 0, 8).is_err());
    assert!(BlockGrid::new(4, 8, 0).is_err());
    let g = grid(32, 70, 33);
    assert_eq!((g.q_blocks(), g.k_blocks()), (3, 2));
    assert_eq!(g.q_range(2), 64..70);
    assert_eq!(g.k_range(1), 32..33);
}

/// Naive block-free attention in f64 from an element mask `[Tq, Tk]` (true = attend) and
/// an additive key mask `[B, Tk]`. Returns the output and, for `dout`, (dQ, dK, dV).
struct Naive {
    out: Vec<f64>,
    grads: [Vec<f64>; 3],
}

fn naive(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    allowed: &[bool],
    key_mask: Option<&Tensor>,
    dout: &Tensor,
) -> Naive {
    let [b, tq, hd] = <[usize; 3]>::try_from(q.dims()).unwrap();
    let tk = k.dims()[1];
    let d = hd / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let (qv, kv, vv, dov) = (
        q.to_vec_f64(),
        k.to_vec_f64(),
        v.to_vec_f64(),
        dout.to_vec_f64(),
    );
    let km = key_mask.map(|m| m.to_vec_f64());
    let mut out = vec![0.0; b * tq * hd];
    let (mut dq, mut dk, mut dv) = (
        vec![0.0; qv.len()],
        vec![0.0; kv.len()],
        vec![0.0; vv.len()],
    );
    let qi = |bi: usize, i: usize, h: usize| (bi * tq + i) * hd + h * d;
    let kj = |bi: usize, j: usize, h: usize| (bi * tk + j) * hd + h * d;
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..tq {
                let keys: Vec<usize> = (0..tk).filter(|&j| allowed[i * tk + j]).collect();
                if keys.is_empty() {
                    continue;
                }
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        let dot: f64 = (0..d)
                            .map(|c| qv[qi(bi, i, h) + c] * kv[kj(bi, j, h) + c])
                            .sum();
                        dot * scale + km.as_ref().map_or(0.0, |m| m[bi * tk + j])
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                let p: Vec<f64> = s.iter().map(|x| (x - mx).exp() / z).collect();
                let dp: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..d)
                            .map(|c| dov[qi(bi, i, h) + c] * vv[kj(bi, j, h) + c])
                            .sum()
                    })
                    .collect();
                let delta: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for (n, &j) in keys.iter().enumerate() {
                    let ds = p[n] * (dp[n] - delta) * scale;
                    for c in 0..d {
                        out[qi(bi, i, h) + c] += p[n] * vv[kj(bi, j, h) + c];
                        dv[kj(bi, j, h) + c] += p[n] * dov[qi(bi, i, h) + c];
                        dq[qi(bi, i, h) + c] += ds * kv[kj(bi, j, h) + c];
                        dk[kj(bi, j, h) + c] += ds * qv[qi(bi, i, h) + c];
                    }
                }
            }
        }
    }
    Naive {
        out,
        grads: [dq, dk, dv],
    }
}

/// ‖got − want‖ / ‖want‖.
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff: f64 = got.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum();
    let norm: f64 = want.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

/// A [B, Tk] additive mask that pads the last `pad[b]` keys of batch b with −1e9.
fn padding_mask(tk: usize, pad: &[usize]) -> Tensor {
    let m: Vec<f64> = pad
        .iter()
        .flat_map(|&p| (0..tk).map(move |j| if j >= tk - p { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, [pad.len(), tk]).unwrap()
}

/// A layout family, built for a given grid.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Dense,
    Local(usize),
    Random(usize),
    BigBird,
    Density(f64),
    /// Self-attention with this many text tokens, text → text and image → everything.
    Modality(usize),
    /// Text rows attend to nothing: rows without keys.
    ModalityEmptyText(usize),
}

fn layout(kind: Kind, g: BlockGrid) -> BlockLayout {
    let modality = |text: usize, tt: bool| {
        let allowed = ModalityBlocks {
            text_text: tt,
            image_image: true,
            text_image: false,
            image_text: true,
        };
        BlockLayout::modality(text, g.tq() - text, g.block(), allowed).unwrap()
    };
    match kind {
        Kind::Dense => BlockLayout::dense(g),
        Kind::Local(w) => BlockLayout::local(g, w),
        Kind::Random(r) => BlockLayout::random(g, r, 11),
        Kind::BigBird => BlockLayout::bigbird(g, 1, 1, 1, 12),
        Kind::Density(d) => BlockLayout::random_density(g, d, 13).unwrap(),
        Kind::Modality(text) => modality(text, true),
        Kind::ModalityEmptyText(text) => modality(text, false),
    }
}

/// (batch, tq, tk, heads, head dim, block, layout, padded keys per batch)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    Kind,
    &'static [usize],
);
const CASES: &[Case] = &[
    (1, 70, 70, 2, 8, 32, Kind::Random(1), &[0]),
    (2, 70, 70, 3, 4, 32, Kind::Local(0), &[0, 5]),
    (2, 37, 37, 2, 5, 8, Kind::BigBird, &[3, 0]),
    (1, 64, 64, 1, 16, 16, Kind::Density(0.5), &[0]),
    (2, 45, 90, 2, 6, 16, Kind::Random(2), &[10, 0]),
    (2, 45, 45, 2, 4, 16, Kind::Modality(13), &[0, 7]),
    (1, 30, 30, 3, 4, 8, Kind::ModalityEmptyText(11), &[2]),
    (3, 9, 9, 1, 3, 4, Kind::Dense, &[0, 2, 8]),
];

#[test]
fn forward_and_backward_match_the_naive_reference() {
    for (n, &(b, tq, tk, h, d, block, kind, pad)) in CASES.iter().enumerate() {
        let seed = 100 * n as u64;
        let (q, k, v) = (
            randn(&[b, tq, h * d], seed),
            randn(&[b, tk, h * d], seed + 1),
            randn(&[b, tk, h * d], seed + 2),
        );
        let mask = padding_mask(tk, pad);
        let l = layout(kind, grid(block, tq, tk));
        let dout = randn(&[b, tq, h * d], seed + 3);
        let want = naive(&q, &k, &v, h, &l.to_dense_mask(), Some(&mask), &dout);
        let (out, saved) = block_sparse_attention(&q, &k, &v, h, &l, Some(&mask)).unwrap();
        let name = format!("case {n}: b={b} tq={tq} tk={tk} h={h} d={d} block={block} {kind:?}");
        let e = rel_err(&out.to_vec_f64(), &want.out);
        assert!(e < 1e-12, "{name}: forward relative error {e}");
        let grads = block_sparse_attention_backward(&q, &k, &v, &saved, &dout).unwrap();
        for (label, got, want) in [
            ("dQ", grads.0, &want.grads[0]),
            ("dK", grads.1, &want.grads[1]),
            ("dV", grads.2, &want.grads[2]),
        ] {
            let e = rel_err(&got.to_vec_f64(), want);
            assert!(e < 1e-12, "{name}: {label} relative error {e}");
        }
    }
}

#[test]
fn rows_without_keys_give_zero_output_and_gradients() {
    let (b, t, h, d, text) = (2, 30, 2, 4, 11);
    let (q, k, v) = (
        randn(&[b, t, h * d], 1),
        randn(&[b, t, h * d], 2),
        randn(&[b, t, h * d], 3),
    );
    let l = layout(Kind::ModalityEmptyText(text), grid(8, t, t));
    let (out, saved) = block_sparse_attention(&q, &k, &v, h, &l, None).unwrap();
    let dout = randn(out.dims(), 4);
    let (dq, _, _) = block_sparse_attention_backward(&q, &k, &v, &saved, &dout).unwrap();
    let (o, g) = (out.to_vec_f64(), dq.to_vec_f64());
    for bi in 0..b {
        for i in 0..t {
            let row = (bi * t + i) * h * d..(bi * t + i + 1) * h * d;
            let text_row = i < text;
            assert_eq!(
                o[row.clone()].iter().all(|&x| x == 0.0),
                text_row,
                "out row {i}"
            );
            assert_eq!(g[row].iter().all(|&x| x == 0.0), text_row, "dq row {i}");
        }
    }
    assert!(o.iter().chain(&g).all(|x| x.is_finite()));
}

#[test]
fn dense_layout_equals_dense_attention() {
    for (b, t, h, d, block, pad) in [(2, 70, 2, 8, 32, [0, 9]), (2, 33, 3, 4, 8, [32, 1])] {
        let (q, k, v) = (
            randn(&[b, t, h * d], 5),
            randn(&[b, t, h * d], 6),
            randn(&[b, t, h * d], 7),
        );
        let mask = padding_mask(t, &pad);
        let l = BlockLayout::dense(grid(block, t, t));
        for dtype in [DType::F64, DType::F32] {
            let c = |x: &Tensor| x.to_dtype(dtype);
            let (want, _) = attention(&c(&q), &c(&k), &c(&v), h, Some(&c(&mask)), None).unwrap();
            let (got, _) =
                block_sparse_attention(&c(&q), &c(&k), &c(&v), h, &l, Some(&c(&mask))).unwrap();
            let e = rel_err(&got.to_vec_f64(), &want.to_vec_f64());
            let tol = if dtype == DType::F64 { 1e-13 } else { 1e-5 };
            assert!(e < tol, "{dtype:?} b={b} t={t}: relative error {e}");
        }
    }
}

#[test]
fn f32_agrees_with_f64() {
    // Head dims and block sizes that exercise full and ragged register tiles of the f32
    // kernels (16, 40 and 64 columns; rows not a multiple of the row group).
    for (b, t, h, d, block, text) in [
        (2, 100, 4, 16, 32, 37),
        (1, 150, 2, 40, 64, 70),
        (2, 77, 3, 64, 16, 20),
    ] {
        let (q, k, v) = (
            randn(&[b, t, h * d], 8),
            randn(&[b, t, h * d], 9),
            randn(&[b, t, h * d], 10),
        );
        let mask = padding_mask(t, &[0, 17][..b]);
        let g = grid(block, t, t);
        let l = layout(Kind::Modality(text), g)
            .union(&BlockLayout::random(g, 1, 3))
            .unwrap();
        let (want, saved64) = block_sparse_attention(&q, &k, &v, h, &l, Some(&mask)).unwrap();
        let dout = randn(want.dims(), 11);
        let want_g = block_sparse_attention_backward(&q, &k, &v, &saved64, &dout).unwrap();
        let f = |x: &Tensor| x.to_dtype(DType::F32);
        let (got, saved) =
            block_sparse_attention(&f(&q), &f(&k), &f(&v), h, &l, Some(&f(&mask))).unwrap();
        let got_g =
            block_sparse_attention_backward(&f(&q), &f(&k), &f(&v), &saved, &f(&dout)).unwrap();
        let pairs = [
            (got, want),
            (got_g.0, want_g.0),
            (got_g.1, want_g.1),
            (got_g.2, want_g.2),
        ];
        for (i, (g, w)) in pairs.iter().enumerate() {
            let e = rel_err(&g.to_vec_f64(), &w.to_vec_f64());
            assert!(
                e < 1e-5,
                "t={t} d={d} block={block} tensor {i}: relative error {e}"
            );
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let cases: &[Case] = &[
        (2, 11, 11, 2, 3, 4, Kind::Random(1), &[0, 3]),
        (1, 10, 13, 1, 4, 4, Kind::Local(1), &[2]),
        (2, 9, 9, 2, 2, 4, Kind::Modality(5), &[1, 0]),
        (1, 9, 9, 1, 3, 4, Kind::ModalityEmptyText(3), &[0]),
    ];
    for &(b, tq, tk, h, d, block, kind, pad) in cases {
        let (q, k, v) = (
            randn(&[b, tq, h * d], 41),
            randn(&[b, tk, h * d], 42),
            randn(&[b, tk, h * d], 43),
        );
        let mask = padding_mask(tk, pad);
        let l = layout(kind, grid(block, tq, tk));
        let run = |q: &Tensor, k: &Tensor, v: &Tensor| {
            block_sparse_attention(q, k, v, h, &l, Some(&mask)).unwrap()
        };
        let (out, saved) = run(&q, &k, &v);
        let r = randn(out.dims(), 44);
        let (dq, dk, dv) = block_sparse_attention_backward(&q, &k, &v, &saved, &r).unwrap();
        let name = format!("b={b} tq={tq} tk={tk} h={h} d={d} block={block} {kind:?}");
        check_qkv_gradients(&name, (&q, &k, &v), (&dq, &dk, &dv), &r, |q, k, v| {
            run(q, k, v).0
        });
    }
}

#[test]
fn ops_reject_bad_inputs() {
    let q = randn(&[2, 10, 8], 1);
    let l = BlockLayout::dense(grid(4, 10, 10));
    let err = block_sparse_attention(&q, &q, &q, 3, &l, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("divisible"), "{err}");
    let other = BlockLayout::dense(grid(4, 10, 12));
    let err = block_sparse_attention(&q, &q, &q, 2, &other, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layout covers 10 x 12"), "{err}");
    let bad_mask = randn(&[2, 9], 2);
    let err = block_sparse_attention(&q, &q, &q, 2, &l, Some(&bad_mask))
        .unwrap_err()
        .to_string();
    assert!(err.contains("key mask"), "{err}");
    let bf = q.to_dtype(DType::BF16);
    assert!(block_sparse_attention(&bf, &bf, &bf, 2, &l, None).is_err());
    let (out, saved) = block_sparse_attention(&q, &q, &q, 2, &l, None).unwrap();
    let short = randn(&[2, 9, 8], 3);
    let err = block_sparse_attention_backward(&q, &q, &q, &saved, &short)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dOut"), "{err}");
    assert!(
        block_sparse_attention_backward(&q, &q, &q, &saved, &out.to_dtype(DType::F32)).is_err()
    );
}
