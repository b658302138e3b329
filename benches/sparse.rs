//! Criterion bench of the sparsity sweeps (the same cases as `sparsevlp bench sparse` and
//! `sparsevlp bench attention`): sparse weight products for every format × sparsity ×
//! shape × product, then block-sparse against dense attention. Throughput is useful FLOPs
//! (criterion's "elem/s" = FLOP/s of the kept weights / computed blocks only).
//!
//! Filter as usual: `cargo bench --bench sparse -- forward/3072x768`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsevlp::bench::attention::{AttentionSweep, AttentionWorkload};
use sparsevlp::bench::sparse::{SparseSweep, Workload};
use sparsevlp::Device;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
}

fn bench_products(c: &mut Criterion) {
    let sweep = SparseSweep::standard();
    for &shape in &sweep.shapes {
        let mut g = c.benchmark_group(format!("{}x{}_t{}", shape.rows, shape.cols, shape.tokens));
        for (kernel, sparsity) in sweep.kernels(Device::Cpu) {
            let mut work = Workload::new(Device::Cpu, shape, kernel, sparsity, sweep.seed)
                .unwrap_or_else(|e| panic!("{kernel} at {sparsity}: {e}"));
            g.throughput(Throughput::Elements(work.useful_flops() as u64));
            for &op in &sweep.ops {
                let id = format!("{}/{kernel}/s{:.0}", op.name(), sparsity * 100.0);
                g.bench_function(id, |b| b.iter(|| work.run(op).unwrap()));
            }
        }
        g.finish();
    }
}

fn bench_attention(c: &mut Criterion) {
    let sweep = AttentionSweep::standard();
    for &seq in &sweep.seqs {
        let mut g = c.benchmark_group(format!("attention_seq{seq}"));
        for (kernel, sparsity) in sweep.kernels(seq) {
            let mut work = AttentionWorkload::new(&sweep, seq, kernel, sparsity, Device::Cpu)
                .unwrap_or_else(|e| panic!("{kernel} at {sparsity}: {e}"));
            for &op in &sweep.ops {
                g.throughput(Throughput::Elements(work.useful_flops(op) as u64));
                let id = format!("{}/{kernel}/s{:.0}", op.name(), sparsity * 100.0);
                g.bench_function(id, |b| b.iter(|| work.run(op).unwrap()));
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_products, bench_attention
}
criterion_main!(benches);
