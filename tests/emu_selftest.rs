//! Tests of the CUDA emulator itself (kernels/emu): the self-test kernels in
//! kernels/emu/selftest/*.cu launched through `sparsevlp::gpu::emu_ffi`, with host
//! vectors as "device memory". They check CUDA semantics (barriers, warp shuffles and
//! votes, atomics, dynamic shared memory, 16-bit floats, WMMA, multi-dimensional
//! launches), that a missing or divergent barrier is caught, and determinism and
//! thread safety of launches.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use half::{bf16, f16};
use sparsevlp::gpu::emu_ffi::{self, Dim3, Schedule};
use sparsevlp::rng::Rng;

/// Kernel arguments, each in its own 8-byte slot (cuLaunchKernel convention: the launch
/// gets a pointer to every argument).
#[derive(Default)]
struct Args {
    slots: Vec<u64>,
}

impl Args {
    fn ptr<T>(mut self, p: *const T) -> Self {
        self.slots.push(p as u64);
        self
    }

    fn ptr_mut<T>(mut self, p: *mut T) -> Self {
        self.slots.push(p as u64);
        self
    }

    fn int(mut self, v: i32) -> Self {
        self.slots.push(u64::from(v as u32));
        self
    }

    fn launch(
        &mut self,
        kernel: &str,
        grid: Dim3,
        block: Dim3,
        shared: usize,
        schedule: Schedule,
    ) -> sparsevlp::Result<()> {
        let mut params: Vec<*mut c_void> = self
            .slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        // SAFETY: every slot holds a value of the kernel's parameter type in its leading
        // bytes; the pointers in them come from vectors the test keeps alive and sized for
        // the launch.
        unsafe { emu_ffi::launch(kernel, grid, block, shared, &mut params, schedule) }
    }
}

fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn relative_error(out: &[f32], reference: &[f64]) -> f64 {
    let num: f64 = out
        .iter()
        .zip(reference)
        .map(|(&o, &r)| (f64::from(o) - r).powi(2))
        .sum();
    let den: f64 = reference.iter().map(|r| r * r).sum();
    (num / den).sqrt()
}

/// Runs the block-sum kernel `kernel` on 8 blocks under `schedule`.
fn block_sums(kernel: &str, input: &[f32], schedule: Schedule) -> Vec<f32> {
    let blocks = input.len() / 256;
    let mut out = vec![f32::NAN; blocks];
    Args::default()
        .ptr(input.as_ptr())
        .ptr_mut(out.as_mut_ptr())
        .launch(kernel, Dim3::x(blocks as u32), Dim3::x(256), 0, schedule)
        .unwrap();
    out
}

#[test]
fn block_reduction_with_barriers_is_correct() {
    let input = random_f32(8 * 256, 1);
    let out = block_sums("emu_selftest_block_sum", &input, Schedule::Ascending);
    let reference: Vec<f64> = input
        .chunks(256)
        .map(|c| c.iter().map(|&v| f64::from(v)).sum())
        .collect();
    assert!(
        relative_error(&out, &reference) < 1e-6,
        "{out:?} vs {reference:?}"
    );
}

#[test]
fn missing_barrier_gives_different_results_under_the_two_schedules() {
    let input = random_f32(8 * 256, 2);
    let good_up = block_sums("emu_selftest_block_sum", &input, Schedule::Ascending);
    let good_down = block_sums("emu_selftest_block_sum", &input, Schedule::Descending);
    assert_eq!(
        good_up.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        good_down.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "a correct kernel must give bit-identical results under both schedules"
    );
    for racy in [
        "emu_selftest_block_sum_racy",
        "emu_selftest_block_sum_racy_tpl",
    ] {
        // Descending first: its (correct) values must not leak into the ascending run.
        let racy_down = block_sums(racy, &input, Schedule::Descending);
        let racy_up = block_sums(racy, &input, Schedule::Ascending);
        eprintln!("{racy}: ascending {racy_up:?}, descending {racy_down:?}");
        let differ = racy_up
            .iter()
            .zip(&racy_down)
            .any(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            differ,
            "{racy}: the planted missing barrier was not exposed"
        );
        // The first block read shared memory no thread of this launch had written: the
        // poison (NaN), not values left over from the previous launch.
        assert!(
            racy_up[0].is_nan(),
            "{racy}: shared memory was not poisoned"
        );
    }
}

/// Line numbers of the lines of `file` (under kernels/emu/selftest) that contain `marker`.
fn lines_with(file: &str, marker: &str) -> Vec<usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels/emu/selftest")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn divergent_barrier_is_an_error_naming_both_call_sites() {
    let mut out = vec![0i32; 64];
    let start = Instant::now();
    let err = Args::default()
        .ptr_mut(out.as_mut_ptr())
        .launch(
            "emu_selftest_divergent_barrier",
            Dim3::x(1),
            Dim3::x(64),
            0,
            Schedule::Ascending,
        )
        .unwrap_err()
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    eprintln!("{err}");
    assert!(err.contains("divergent"), "{err}");
    assert!(err.contains("emu_selftest_divergent_barrier"), "{err}");
    let first = lines_with("barriers.cu", "first call site");
    let second = lines_with("barriers.cu", "second call site");
    for line in [first[0], second[0]] {
        assert!(
            err.contains(&format!("barriers.cu:{line}:")),
            "line {line} missing: {err}"
        );
    }
    // The emulator is usable again after an abandoned launch.
    block_reduction_with_barriers_is_correct();
}

#[test]
fn barrier_against_unfinishable_shuffle_is_an_error() {
    let mut out = vec![0i32; 64];
    let err = Args::default()
        .ptr_mut(out.as_mut_ptr())
        .launch(
            "emu_selftest_barrier_vs_shuffle",
            Dim3::x(1),
            Dim3::x(64),
            0,
            Schedule::Descending,
        )
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(err.contains("divergent"), "{err}");
    assert!(err.contains("__shfl_xor_sync()"), "{err}");
    assert!(err.contains("__syncthreads()"), "{err}");
}

#[test]
fn early_returning_threads_do_not_deadlock_later_barriers() {
    let input: Vec<i32> = (0..256).map(|i| i * 3 - 100).collect();
    for n in [1, 100, 255, 256] {
        for schedule in [Schedule::Ascending, Schedule::Descending] {
            let mut out = vec![-1i32; 256];
            Args::default()
                .ptr(input.as_ptr())
                .int(n)
                .ptr_mut(out.as_mut_ptr())
                .launch(
                    "emu_selftest_early_exit",
                    Dim3::x(1),
                    Dim3::x(256),
                    0,
                    schedule,
                )
                .unwrap();
            let sum: i32 = input[..n as usize].iter().sum();
            for (t, &o) in out.iter().enumerate() {
                let want = if (t as i32) < n { sum + t as i32 } else { -1 };
                assert_eq!(o, want, "n {n}, thread {t}");
            }
        }
    }
}

#[test]
fn syncthreads_count_and_or_reduce_the_predicate() {
    for (pattern, count) in [(0, 0), (1, 96), (2, 1), (3, 96)] {
        let pred: Vec<i32> = (0..96)
            .map(|t| match pattern {
                0 => 0,
                1 => 1,
                2 => i32::from(t == 37),
                _ => 5,
            })
            .collect();
        let mut out = vec![-1i32; 3];
        Args::default()
            .ptr(pred.as_ptr())
            .ptr_mut(out.as_mut_ptr())
            .launch(
                "emu_selftest_sync_count",
                Dim3::x(1),
                Dim3::x(96),
                0,
                Schedule::Ascending,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![count, i32::from(count == 96), i32::from(count > 0)]
        );
    }
}

/// CUDA's documented shuffle results for lane `lane` of a warp holding `v`.
fn expected_shuffles(v: &[i32], lane: usize, width: usize, offset: usize) -> [i32; 4] {
    let seg = lane / width * width;
    let xor_src = lane ^ offset;
    // Later segments are out of reach: the lane's own value.
    let xor = if xor_src >= seg + width {
        v[lane]
    } else {
        v[xor_src]
    };
    let down = if lane % width + offset < width {
        v[lane + offset]
    } else {
        v[lane]
    };
    let up = if lane % width >= offset {
        v[lane - offset]
    } else {
        v[lane]
    };
    let idx = v[seg + offset % width];
    [xor, down, up, idx]
}

#[test]
fn warp_shuffles_and_votes_follow_cuda_semantics() {
    let input: Vec<i32> = (0..64).map(|i| (i * 37 + 11) % 101).collect();
    for width in [32, 16, 8, 4, 2, 1] {
        for offset in [0, 1, 3, 5, 16] {
            let mut out = vec![0i32; 64 * 8];
            Args::default()
                .ptr(input.as_ptr())
                .int(width as i32)
                .int(offset as i32)
                .ptr_mut(out.as_mut_ptr())
                .launch(
                    "emu_selftest_shuffles",
                    Dim3::x(1),
                    Dim3::x(64),
                    0,
                    Schedule::Descending,
                )
                .unwrap();
            for t in 0..64 {
                let warp = &input[t / 32 * 32..t / 32 * 32 + 32];
                let got = &out[8 * t..8 * t + 8];
                assert_eq!(
                    got[..4],
                    expected_shuffles(warp, t % 32, width, offset),
                    "thread {t}, width {width}, offset {offset}"
                );
                let ballot = warp
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (l, v)| m | (((v & 1) as u32) << l));
                assert_eq!(got[4] as u32, ballot);
                assert_eq!(got[5], i32::from(ballot != 0));
                assert_eq!(got[6], i32::from(ballot == u32::MAX));
                assert_eq!(got[7], ballot.count_ones() as i32);
            }
        }
    }
}

#[test]
fn votes_in_a_partial_warp_cover_its_existing_lanes() {
    // 48 threads: the second warp has lanes 0..15 only.
    let input: Vec<i32> = vec![1; 48];
    let mut out = vec![0i32; 48 * 8];
    Args::default()
        .ptr(input.as_ptr())
        .int(32)
        .int(0)
        .ptr_mut(out.as_mut_ptr())
        .launch(
            "emu_selftest_shuffles",
            Dim3::x(1),
            Dim3::x(48),
            0,
            Schedule::Ascending,
        )
        .unwrap();
    assert_eq!(out[8 * 40 + 4] as u32, 0xffff);
    assert_eq!(out[8 * 40 + 6], 1, "__all_sync over the existing lanes");
    assert_eq!(out[8 * 40 + 7], 16);
    assert_eq!(out[8 * 3 + 7], 32);
}

#[test]
fn match_any_and_warp_reductions() {
    let input: Vec<i32> = (0..32).map(|i| (i % 3) - 7 * (i % 2)).collect();
    let mut out = vec![0i32; 32 * 4];
    Args::default()
        .ptr(input.as_ptr())
        .ptr_mut(out.as_mut_ptr())
        .launch(
            "emu_selftest_warp_misc",
            Dim3::x(1),
            Dim3::x(32),
            0,
            Schedule::Ascending,
        )
        .unwrap();
    let sum: i32 = input.iter().sum();
    let (min, max) = (*input.iter().min().unwrap(), *input.iter().max().unwrap());
    for t in 0..32 {
        let same = (0..32)
            .filter(|&l| input[l] == input[t])
            .fold(0u32, |m, l| m | 1 << l);
        assert_eq!(
            out[4 * t..4 * t + 4],
            [same as i32, sum, min, max],
            "lane {t}"
        );
    }
}

#[test]
fn atomics_from_many_blocks() {
    let (blocks, threads) = (16u32, 128u32);
    let total = (blocks * threads) as i32;
    let mut counters = vec![0i32, 0, i32::MIN, i32::MAX, 0];
    let mut wide = vec![0u64];
    let mut fsum = vec![0f32];
    let mut hist = vec![0i32; 16];
    Args::default()
        .ptr_mut(counters.as_mut_ptr())
        .ptr_mut(wide.as_mut_ptr())
        .ptr_mut(fsum.as_mut_ptr())
        .ptr_mut(hist.as_mut_ptr())
        .launch(
            "emu_selftest_atomics",
            Dim3::x(blocks),
            Dim3::x(threads),
            0,
            Schedule::Ascending,
        )
        .unwrap();
    assert_eq!(counters[0], total);
    assert_eq!(counters[1] as u32, (0..total as u32).sum::<u32>());
    assert_eq!(counters[2], total - 1);
    assert_eq!(counters[3], -(total - 1));
    assert_eq!(counters[4], 7);
    assert_eq!(wide[0], (total as u64) << 33);
    assert_eq!(fsum[0], total as f32 * 0.5);
    assert_eq!(hist, vec![total / 16; 16]);
}

#[test]
fn dynamic_shared_memory_has_the_launch_size() {
    for n in [1usize, 100, 1000, 12000] {
        let blocks = 3;
        let input = random_f32(blocks * n, n as u64);
        let mut out = vec![f32::NAN; blocks * n];
        Args::default()
            .ptr(input.as_ptr())
            .int(n as i32)
            .ptr_mut(out.as_mut_ptr())
            .launch(
                "emu_selftest_dynamic_reverse",
                Dim3::x(blocks as u32),
                Dim3::x(96),
                n * 4,
                Schedule::Descending,
            )
            .unwrap();
        for b in 0..blocks {
            let mut want = input[b * n..(b + 1) * n].to_vec();
            want.reverse();
            assert_eq!(out[b * n..(b + 1) * n], want[..], "n {n}, block {b}");
        }
    }
    let err = Args::default()
        .ptr(std::ptr::null::<f32>())
        .int(0)
        .ptr_mut(std::ptr::null_mut::<f32>())
        .launch(
            "emu_selftest_dynamic_reverse",
            Dim3::x(1),
            Dim3::x(32),
            1 << 20,
            Schedule::Ascending,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("dynamic shared memory"), "{err}");
}

#[test]
fn half_and_bfloat16_conversions_match_the_half_crate() {
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        65504.0,
        65519.0,
        65520.0,
        1e6,
        -1e6,
        6.1e-5,
        5.96e-8,
        2.98e-8,
        2.99e-8,
        1e-10,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
    ];
    let mut rng = Rng::new(7);
    for _ in 0..20000 {
        // Random bit patterns (NaNs excluded) cover every exponent, subnormals and ties.
        let bits = rng.next_u64() as u32;
        let v = f32::from_bits(bits);
        if !v.is_nan() {
            x.push(v);
        }
    }
    x.push(f32::NAN);
    let n = x.len();
    let mut h = vec![0u16; n];
    let mut b = vec![0u16; n];
    let mut back = vec![0f32; 2 * n];
    Args::default()
        .ptr(x.as_ptr())
        .int(n as i32)
        .ptr_mut(h.as_mut_ptr())
        .ptr_mut(b.as_mut_ptr())
        .ptr_mut(back.as_mut_ptr())
        .launch(
            "emu_selftest_half_convert",
            Dim3::x(7),
            Dim3::x(128),
            0,
            Schedule::Ascending,
        )
        .unwrap();
    for i in 0..n - 1 {
        assert_eq!(
            h[i],
            f16::from_f32(x[i]).to_bits(),
            "f16 of {:e} ({:#x})",
            x[i],
            x[i].to_bits()
        );
        assert_eq!(b[i], bf16::from_f32(x[i]).to_bits(), "bf16 of {:e}", x[i]);
        assert_eq!(
            back[2 * i].to_bits(),
            f16::from_bits(h[i]).to_f32().to_bits()
        );
        assert_eq!(
            back[2 * i + 1].to_bits(),
            bf16::from_bits(b[i]).to_f32().to_bits()
        );
    }
    assert!(f16::from_bits(h[n - 1]).is_nan() && bf16::from_bits(b[n - 1]).is_nan());
    assert!(back[2 * n - 2].is_nan() && back[2 * n - 1].is_nan());
}

#[test]
fn wmma_bf16_gemm_matches_a_cpu_reference() {
    let (m, n, k) = (64usize, 48usize, 80usize);
    let a: Vec<bf16> = random_f32(m * k, 11)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let b: Vec<bf16> = random_f32(k * n, 12)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    // b stored [K, N]; bt the same matrix stored [N, K].
    let bt: Vec<bf16> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    let reference: Vec<f64> = (0..m * n)
        .map(|i| {
            (0..k)
                .map(|p| {
                    f64::from(a[i / n * k + p].to_f32()) * f64::from(b[p * n + i % n].to_f32())
                })
                .sum()
        })
        .collect();
    for (col_major, bmat) in [(0, &b), (1, &bt)] {
        let mut c = vec![f32::NAN; m * n];
        Args::default()
            .ptr(a.as_ptr())
            .ptr(bmat.as_ptr())
            .ptr_mut(c.as_mut_ptr())
            .int(m as i32)
            .int(n as i32)
            .int(k as i32)
            .int(col_major)
            .launch(
                "emu_selftest_wmma_bf16",
                Dim3::new((n / 32 + 1) as u32, (m / 32) as u32, 1),
                Dim3::x(128),
                0,
                Schedule::Ascending,
            )
            .unwrap();
        let err = relative_error(&c, &reference);
        assert!(err < 1e-6, "B col_major {col_major}: relative error {err}");
    }
}

/// Runs the tiled f32 GEMM on m×k by k×n.
fn tiled_gemm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, schedule: Schedule) -> Vec<f32> {
    let mut c = vec![f32::NAN; m * n];
    Args::default()
        .ptr(a.as_ptr())
        .ptr(b.as_ptr())
        .ptr_mut(c.as_mut_ptr())
        .int(m as i32)
        .int(n as i32)
        .int(k as i32)
        .launch(
            "emu_selftest_gemm_tiled",
            Dim3::new(n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1),
            Dim3::new(16, 16, 1),
            0,
            schedule,
        )
        .unwrap();
    c
}

fn gemm_reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    (0..m * n)
        .map(|i| {
            (0..k)
                .map(|p| f64::from(a[i / n * k + p]) * f64::from(b[p * n + i % n]))
                .sum()
        })
        .collect()
}

#[test]
fn tiled_shared_memory_gemm_is_correct_and_fast_enough_to_use() {
    for (m, n, k) in [(64, 64, 64), (37, 50, 23)] {
        let a = random_f32(m * k, 21);
        let b = random_f32(k * n, 22);
        let c = tiled_gemm(&a, &b, m, n, k, Schedule::Ascending);
        let err = relative_error(&c, &gemm_reference(&a, &b, m, n, k));
        assert!(err < 1e-6, "{m}x{n}x{k}: relative error {err}");
    }
    // Timing is reported, never asserted (shared machines).
    let (a, b) = (random_f32(64 * 64, 23), random_f32(64 * 64, 24));
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        tiled_gemm(&a, &b, 64, 64, 64, Schedule::Ascending);
    }
    eprintln!(
        "emulator: 64x64x64 tiled shared-memory GEMM (16 blocks of 256 threads): {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3 / f64::from(runs)
    );
}

#[test]
fn multi_dimensional_grids_and_blocks() {
    // The largest block (1024 threads) included.
    for (grid, block) in [
        (Dim3::new(3, 2, 2), Dim3::new(4, 3, 2)),
        (Dim3::new(2, 1, 3), Dim3::new(16, 8, 8)),
    ] {
        let records = (grid.count() * block.count()) as usize;
        let mut out = vec![-1i32; records * 12];
        Args::default()
            .ptr_mut(out.as_mut_ptr())
            .launch(
                "emu_selftest_grid_ids",
                grid,
                block,
                0,
                Schedule::Descending,
            )
            .unwrap();
        let mut i = 0;
        for bz in 0..grid.z as i32 {
            for by in 0..grid.y as i32 {
                for bx in 0..grid.x as i32 {
                    for tz in 0..block.z as i32 {
                        for ty in 0..block.y as i32 {
                            for tx in 0..block.x as i32 {
                                let (b, g) = (block, grid);
                                let want = [
                                    tx, ty, tz, bx, by, bz, b.x as i32, b.y as i32, b.z as i32,
                                    g.x as i32, g.y as i32, g.z as i32,
                                ];
                                assert_eq!(out[12 * i..12 * i + 12], want, "record {i}");
                                i += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn unknown_kernels_and_bad_launches_are_clear_errors() {
    let err = Args::default()
        .launch(
            "emu_selftest_no_such_kernel",
            Dim3::x(1),
            Dim3::x(1),
            0,
            Schedule::Ascending,
        )
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(
        err.contains("unknown kernel `emu_selftest_no_such_kernel`"),
        "{err}"
    );
    assert!(
        err.contains("emu_selftest_"),
        "should list similar kernels: {err}"
    );

    let mut out = vec![0i32; 4];
    let mut launch = |grid: Dim3, block: Dim3| {
        Args::default()
            .ptr_mut(out.as_mut_ptr())
            .launch("emu_selftest_grid_ids", grid, block, 0, Schedule::Ascending)
            .unwrap_err()
            .to_string()
    };
    let err = launch(Dim3::x(1), Dim3::new(32, 33, 1));
    assert!(
        err.contains("block too large") && err.contains("emu_selftest_grid_ids"),
        "{err}"
    );
    let err = launch(Dim3::new(1, 0, 1), Dim3::x(1));
    assert!(err.contains("at least 1"), "{err}");

    let err = Args::default()
        .launch(
            "emu_selftest_grid_ids",
            Dim3::x(1),
            Dim3::x(1),
            0,
            Schedule::Ascending,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes 1 parameters, 0 given"), "{err}");
}

#[test]
fn device_assert_and_trap_fail_the_launch_not_the_process() {
    let mut out = vec![-1i32; 64];
    let mut run = |assert_at: i32, trap_at: i32| {
        Args::default()
            .ptr_mut(out.as_mut_ptr())
            .int(assert_at)
            .int(trap_at)
            .launch(
                "emu_selftest_faults",
                Dim3::x(1),
                Dim3::x(64),
                0,
                Schedule::Ascending,
            )
    };
    run(-1, -1).unwrap();
    let err = run(5, -1).unwrap_err().to_string();
    assert!(
        err.contains("thread (5,0,0)") && err.contains("assertion `t != assert_at` failed"),
        "{err}"
    );
    let err = run(-1, 40).unwrap_err().to_string();
    assert!(
        err.contains("thread (40,0,0)") && err.contains("__trap()"),
        "{err}"
    );
    run(-1, -1).unwrap();
    assert_eq!(out, (0..64).collect::<Vec<i32>>());
}

#[test]
fn kernel_registry_lists_the_selftests_with_their_parameter_sizes() {
    let names = emu_ffi::kernel_names();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    for k in [
        "emu_selftest_block_sum",
        "emu_selftest_wmma_bf16",
        "emu_selftest_grid_ids",
    ] {
        assert!(names.iter().any(|n| n == k), "{k} missing from {names:?}");
    }
    assert_eq!(
        emu_ffi::kernel_param_sizes("emu_selftest_block_sum"),
        Some(vec![8, 8])
    );
    assert_eq!(
        emu_ffi::kernel_param_sizes("emu_selftest_shuffles"),
        Some(vec![8, 4, 4, 8])
    );
    assert_eq!(emu_ffi::kernel_param_sizes("no_such_kernel"), None);
}

#[test]
fn launches_are_deterministic_even_for_racy_kernels() {
    let input = random_f32(8 * 256, 3);
    let racy = [
        "emu_selftest_block_sum_racy",
        "emu_selftest_block_sum_racy_tpl",
    ];
    for (kernel, schedule) in racy
        .into_iter()
        .flat_map(|k| [(k, Schedule::Ascending), (k, Schedule::Descending)])
    {
        let first = block_sums(kernel, &input, schedule);
        for round in 0..3 {
            // Other launches in between leave other values in shared memory.
            let other = random_f32(8 * 256, 4 + round);
            block_sums(kernel, &other, Schedule::Ascending);
            block_sums(kernel, &other, Schedule::Descending);
            let again = block_sums(kernel, &input, schedule);
            assert_eq!(
                first.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                again.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn concurrent_launches_from_several_threads_are_serialised() {
    let handles: Vec<_> = (0..4u64)
        .map(|seed| {
            std::thread::spawn(move || {
                for round in 0..5 {
                    let a = random_f32(48 * 40, seed * 100 + round);
                    let b = random_f32(40 * 56, seed * 100 + round + 50);
                    let c = tiled_gemm(&a, &b, 48, 56, 40, Schedule::Ascending);
                    let err = relative_error(&c, &gemm_reference(&a, &b, 48, 56, 40));
                    assert!(err < 1e-6, "thread {seed}, round {round}: {err}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// nvcc from $NVCC, $CUDA_HOME/bin, the repository's pip install, or PATH.
fn find_nvcc() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var_os("NVCC").map(PathBuf::from),
        std::env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("bin/nvcc")),
        Some(root.join(".cache/nvcc/nvidia/cu13/bin/nvcc")),
    ]
    .into_iter()
    .flatten()
    .chain(std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nvcc"))
            .collect::<Vec<_>>()
    }))
    .find(|p| p.is_file())
}

#[test]
fn selftest_kernels_are_valid_cuda() {
    let Some(nvcc) = find_nvcc() else {
        eprintln!("skipping: nvcc not found ($NVCC, $CUDA_HOME, .cache/nvcc, PATH)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/emu/selftest");
    let out = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    for file in files {
        let ptx = out
            .path()
            .join(file.file_name().unwrap())
            .with_extension("ptx");
        let result = std::process::Command::new(&nvcc)
            .args(["-ptx", "-arch=compute_80", "-o"])
            .arg(&ptx)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "nvcc rejects {}:\n{}",
            file.display(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}
