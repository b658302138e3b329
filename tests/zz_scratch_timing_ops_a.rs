use sparsevlp::ops::dropout::dropout;
use sparsevlp::ops::elementwise::*;
use sparsevlp::ops::layernorm::*;
use sparsevlp::ops::softmax::*;
use sparsevlp::{DType, Device, Tensor};
use std::time::Instant;

fn time(name: &str, mut f: impl FnMut()) {
    f();
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "{name:40} min {:7.3} ms  median {:7.3} ms",
        v[0],
        v[v.len() / 2]
    );
}

#[test]
#[ignore]
fn scratch_timing() {
    eprintln!(
        "simd {:?} threads {}",
        sparsevlp::ops::cpu::SimdLevel::detect(),
        rayon::current_num_threads()
    );
    let x = Tensor::randn([1024, 3072], 1.0, 1, DType::F32);
    let dy = Tensor::randn([1024, 3072], 1.0, 2, DType::F32);
    time("copy 1024x3072 (clone)", || {
        std::hint::black_box(x.clone());
    });
    time("scale 1024x3072", || {
        std::hint::black_box(scale(&x, 2.0).unwrap());
    });
    time("gelu 1024x3072", || {
        std::hint::black_box(gelu(&x).unwrap());
    });
    time("gelu_backward 1024x3072", || {
        std::hint::black_box(gelu_backward(&x, &dy).unwrap());
    });
    time("tanh 1024x3072", || {
        std::hint::black_box(tanh(&x).unwrap());
    });
    time("sigmoid 1024x3072", || {
        std::hint::black_box(sigmoid(&x).unwrap());
    });
    time("dropout 1024x3072", || {
        std::hint::black_box(dropout(&x, 0.1, 3).unwrap());
    });
    let b = Tensor::randn([3072], 1.0, 3, DType::F32);
    time("bias_add 1024x3072", || {
        std::hint::black_box(bias_add(&x, &b).unwrap());
    });
    let mut db = Tensor::zeros([3072], DType::F32, Device::Cpu);
    time("bias_add_backward 1024x3072", || {
        bias_add_backward(&dy, &mut db).unwrap();
    });
    let h = Tensor::randn([1024, 768], 1.0, 4, DType::F32);
    let dh = Tensor::randn([1024, 768], 1.0, 5, DType::F32);
    let g = Tensor::full([768], 1.0, DType::F32);
    let be = Tensor::zeros([768], DType::F32, Device::Cpu);
    time("layer_norm 1024x768", || {
        std::hint::black_box(layer_norm(&h, &g, &be, 1e-12).unwrap());
    });
    let (_, saved) = layer_norm(&h, &g, &be, 1e-12).unwrap();
    let (mut dg, mut dbe) = (be.clone(), be.clone());
    time("layer_norm_backward 1024x768", || {
        std::hint::black_box(layer_norm_backward(&h, &g, &saved, &dh, &mut dg, &mut dbe).unwrap());
    });
    let s = Tensor::randn([1, 12, 1024, 1024], 1.0, 6, DType::F32);
    let m = Tensor::zeros([1, 1024], DType::F32, Device::Cpu);
    time("softmax 12x1024x1024 masked", || {
        std::hint::black_box(softmax(&s, Some(&m)).unwrap());
    });
    let y = softmax(&s, Some(&m)).unwrap();
    time("softmax_backward 12x1024x1024", || {
        std::hint::black_box(softmax_backward(&y, &s).unwrap());
    });
    let x64 = x.to_dtype(DType::F64);
    time("gelu f64 1024x3072", || {
        std::hint::black_box(gelu(&x64).unwrap());
    });
}
