//! Block-sparse flash attention on GPU devices (kernels/block_sparse_attention.cu through
//! `ops::block_sparse_attention` on emulator / CUDA tensors) against the CPU op in f64.
//!
//! Cases: ragged sequence lengths (not multiples of the block or the kernel tile), batch 2,
//! 2–3 heads, head dims 16/32/64, blocks of 32 and 64, layouts dense, local, random,
//! BigBird, cross-attention local, modality with blocks straddling the text/image boundary
//! (element masks) and with text rows that may attend to nothing (zero output and
//! gradients), key padding masks, and a batch entry whose every key is masked with −∞.
//! Forward output, log-sum-exp, dQ, dK and dV must be within 1e-5 of the f64 CPU op; GPU
//! outputs are poisoned (NaN) on the emulator before the kernels run, so an unwritten
//! element fails; both emulator schedules must give identical bits. The GPU backward also
//! passes a finite-difference check against the f64 CPU forward.

mod common;

use common::gpu::{check, on_devices, randn, t64, widen, Agree, TOL_F32};
use sparsevlp::gpu::sparse::GpuBlockLayout;
use sparsevlp::gpu::GpuContext;
use sparsevlp::gradcheck::{check_gradient, dot, GradCheckConfig};
use sparsevlp::ops::block_sparse_attention::{
    block_sparse_attention, block_sparse_attention_backward,
};
use sparsevlp::sparse::attention::{BlockGrid, BlockLayout, ModalityBlocks};
use sparsevlp::{Device, Result, Tensor};

/// The key mask of a case.
#[derive(Clone, Copy, Debug)]
enum KeyMask {
    None,
    /// Random values on valid keys, −1e9 on the last 5·b keys of batch entry b.
    Padding,
    /// Batch entry 0 padded as [`KeyMask::Padding`], batch entry 1 −∞ everywhere.
    BatchMasked,
}

/// One case: sizes, layout and key mask.
struct Case {
    name: &'static str,
    b: usize,
    h: usize,
    d: usize,
    layout: BlockLayout,
    mask: KeyMask,
}

fn grid(block: usize, tq: usize, tk: usize) -> BlockGrid {
    BlockGrid::new(block, tq, tk).unwrap()
}

/// Text and image queries attend to everything except text → image (blocks straddling the
/// boundary carry element masks).
const NO_TEXT_TO_IMAGE: ModalityBlocks = ModalityBlocks {
    text_text: true,
    image_image: true,
    text_image: false,
    image_text: true,
};

/// Text rows attend to nothing (zero output); image rows to everything.
const TEXT_ROWS_EMPTY: ModalityBlocks = ModalityBlocks {
    text_text: false,
    image_image: true,
    text_image: false,
    image_text: true,
};

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "dense",
            b: 2,
            h: 2,
            d: 16,
            layout: BlockLayout::dense(grid(32, 70, 70)),
            mask: KeyMask::None,
        },
        Case {
            name: "local",
            b: 2,
            h: 3,
            d: 32,
            layout: BlockLayout::local(grid(32, 100, 100), 1),
            mask: KeyMask::Padding,
        },
        Case {
            name: "random",
            b: 2,
            h: 2,
            d: 64,
            layout: BlockLayout::random(grid(32, 130, 130), 1, 7),
            mask: KeyMask::None,
        },
        Case {
            name: "bigbird",
            b: 2,
            h: 2,
            d: 32,
            layout: BlockLayout::bigbird(grid(32, 161, 161), 1, 1, 1, 11),
            mask: KeyMask::Padding,
        },
        Case {
            name: "local block 64, cross",
            b: 2,
            h: 2,
            d: 64,
            layout: BlockLayout::local(grid(64, 70, 150), 0),
            mask: KeyMask::Padding,
        },
        Case {
            name: "modality straddling",
            b: 2,
            h: 2,
            d: 16,
            layout: BlockLayout::modality(21, 75, 32, NO_TEXT_TO_IMAGE).unwrap(),
            mask: KeyMask::Padding,
        },
        Case {
            name: "modality block 64, empty text rows",
            b: 2,
            h: 3,
            d: 32,
            layout: BlockLayout::modality(40, 61, 64, TEXT_ROWS_EMPTY).unwrap(),
            mask: KeyMask::None,
        },
        Case {
            name: "dense, batch fully masked",
            b: 2,
            h: 2,
            d: 16,
            layout: BlockLayout::dense(grid(32, 45, 45)),
            mask: KeyMask::BatchMasked,
        },
    ]
}

/// Random inputs of a case: q, k, v, dOut and the key mask, as f32 values.
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
    mask: Option<Vec<f32>>,
}

impl Case {
    fn dims(&self) -> ([usize; 3], [usize; 3]) {
        let hd = self.h * self.d;
        (
            [self.b, self.layout.tq(), hd],
            [self.b, self.layout.tk(), hd],
        )
    }

    fn inputs(&self, seed: u64) -> Inputs {
        let ((qd, kd), tk) = (self.dims(), self.layout.tk());
        let n = |d: [usize; 3]| d.iter().product::<usize>();
        let mask = match self.mask {
            KeyMask::None => None,
            KeyMask::Padding | KeyMask::BatchMasked => {
                let mut m = randn(self.b * tk, 0.3, seed + 4);
                for bi in 0..self.b {
                    for t in tk.saturating_sub(5 * bi)..tk {
                        m[bi * tk + t] = -1e9;
                    }
                }
                if let KeyMask::BatchMasked = self.mask {
                    m[tk..2 * tk].fill(f32::NEG_INFINITY);
                }
                Some(m)
            }
        };
        Inputs {
            q: randn(n(qd), 1.0, seed),
            k: randn(n(kd), 1.0, seed + 1),
            v: randn(n(kd), 1.0, seed + 2),
            dout: randn(n(qd), 1.0, seed + 3),
            mask,
        }
    }

    fn label(&self) -> String {
        format!(
            "{} (B {} H {} D {} Tq {} Tk {} block {} mask {:?})",
            self.name,
            self.b,
            self.h,
            self.d,
            self.layout.tq(),
            self.layout.tk(),
            self.layout.block(),
            self.mask
        )
    }
}

/// The op on `device`: `[out, lse, dQ, dK, dV]` as f32 values.
fn run_op(case: &Case, x: &Inputs, device: Device) -> Result<Vec<Vec<f32>>> {
    let (qd, kd) = case.dims();
    let on = |v: &[f32], dims: &[usize]| -> Result<Tensor> {
        Tensor::from_vec(v.to_vec(), dims.to_vec())?.to_device(device)
    };
    let (q, k, v) = (on(&x.q, &qd)?, on(&x.k, &kd)?, on(&x.v, &kd)?);
    let mask = x
        .mask
        .as_ref()
        .map(|m| on(m, &[case.b, case.layout.tk()]))
        .transpose()?;
    let (out, saved) = block_sparse_attention(&q, &k, &v, case.h, &case.layout, mask.as_ref())?;
    let dout = on(&x.dout, &qd)?;
    let (dq, dk, dv) = block_sparse_attention_backward(&q, &k, &v, &saved, &dout)?;
    Ok([&out, &saved.lse, &dq, &dk, &dv]
        .iter()
        .map(|t| t.to_vec_f32())
        .collect())
}

/// The f64 CPU op: `[out, lse, dQ, dK, dV]`.
fn reference(case: &Case, x: &Inputs) -> Vec<Vec<f64>> {
    let (qd, kd) = case.dims();
    let (q, k, v) = (t64(&x.q, &qd), t64(&x.k, &kd), t64(&x.v, &kd));
    let mask = x.mask.as_ref().map(|m| t64(m, &[case.b, case.layout.tk()]));
    let (out, saved) =
        block_sparse_attention(&q, &k, &v, case.h, &case.layout, mask.as_ref()).unwrap();
    let (dq, dk, dv) =
        block_sparse_attention_backward(&q, &k, &v, &saved, &t64(&x.dout, &qd)).unwrap();
    [&out, &saved.lse, &dq, &dk, &dv]
        .iter()
        .map(|t| t.to_vec_f64())
        .collect()
}

/// Log-sum-exps agree: +∞ (rows without keys) in the same rows, the rest within `TOL_F32`.
fn check_lse(what: &str, dev: Device, lse: &[f32], reference: &[f64]) {
    let empty = |v: f64| v == f64::INFINITY;
    for (i, (&g, &r)) in lse.iter().zip(reference).enumerate() {
        assert_eq!(
            empty(g as f64),
            empty(r),
            "{what} on {dev}: row {i} lse {g} vs {r}"
        );
    }
    let (g, r): (Vec<f32>, Vec<f64>) = lse
        .iter()
        .zip(reference)
        .filter(|(_, &r)| !empty(r))
        .map(|(&g, &r)| (g, r))
        .unzip();
    check(what, dev, &g, &r, TOL_F32);
}

#[test]
fn block_sparse_attention_matches_cpu() {
    const NAMES: [&str; 5] = ["out", "lse", "dq", "dk", "dv"];
    for (i, case) in cases().iter().enumerate() {
        let label = case.label();
        let x = case.inputs(9000 + 10 * i as u64);
        let want = reference(case, &x);
        for (dev, got) in on_devices(&label, Agree::Exactly, |ctx| run_op(case, &x, ctx.device())) {
            for (j, name) in NAMES.iter().enumerate() {
                let what = format!("{label} ({name})");
                if *name == "lse" {
                    check_lse(&what, dev, &got[j], &want[j]);
                } else {
                    check(&what, dev, &got[j], &want[j], TOL_F32);
                }
            }
            if case.name.contains("empty text rows") {
                let hd = case.h * case.d;
                for (name, g) in [("out", &got[0]), ("dq", &got[2])] {
                    let text = &g[..40 * hd];
                    assert!(
                        text.iter().all(|&v| v == 0.0),
                        "{label}: {name} of rows without keys is not 0"
                    );
                }
            }
        }
    }
}

#[test]
fn gpu_backward_matches_finite_differences() {
    let case = Case {
        name: "gradcheck",
        b: 1,
        h: 2,
        d: 16,
        layout: BlockLayout::modality(13, 30, 32, NO_TEXT_TO_IMAGE).unwrap(),
        mask: KeyMask::Padding,
    };
    let x = case.inputs(321);
    let got = run_op(&case, &x, Device::Emu).unwrap();
    let (qd, kd) = case.dims();
    let mask = x.mask.as_ref().map(|m| t64(m, &[case.b, case.layout.tk()]));
    let dout = widen(&x.dout);
    let loss = |q: &[f32], k: &[f32], v: &[f32], which: usize, at: &[f64]| {
        let mut t = [t64(q, &qd), t64(k, &kd), t64(v, &kd)];
        t[which] = Tensor::from_vec(at.to_vec(), t[which].shape().clone()).unwrap();
        let (out, _) =
            block_sparse_attention(&t[0], &t[1], &t[2], case.h, &case.layout, mask.as_ref())
                .unwrap();
        dot(&out.to_vec_f64(), &dout)
    };
    let cfg = GradCheckConfig {
        eps: 1e-4,
        rtol: 1e-4,
        atol: 1e-6,
        max_entries: 150,
    };
    for (which, (name, input)) in [("dQ", &x.q), ("dK", &x.k), ("dV", &x.v)]
        .into_iter()
        .enumerate()
    {
        check_gradient(
            name,
            &widen(input),
            &widen(&got[2 + which]),
            |at| loss(&x.q, &x.k, &x.v, which, at),
            cfg,
        )
        .unwrap();
    }
}

#[test]
fn unsupported_layouts_and_shapes_are_refused() {
    let ctx = GpuContext::get(Device::Emu).unwrap();
    let err = GpuBlockLayout::upload(ctx, &BlockLayout::dense(grid(16, 40, 40))).unwrap_err();
    assert!(err.to_string().contains("multiple of 32"), "{err}");

    // Head dim 72 > 64 through the op.
    let (b, t, h, d) = (1, 40, 1, 72);
    let q = Tensor::from_vec(randn(b * t * h * d, 1.0, 5), vec![b, t, h * d])
        .unwrap()
        .to_device(Device::Emu)
        .unwrap();
    let layout = BlockLayout::dense(grid(32, t, t));
    let err = block_sparse_attention(&q, &q, &q, h, &layout, None).unwrap_err();
    assert!(err.to_string().contains("head dim 72"), "{err}");

    // A layout over other lengths.
    let other = BlockLayout::dense(grid(32, t + 1, t));
    assert!(block_sparse_attention(&q, &q, &q, h, &other, None).is_err());
}
