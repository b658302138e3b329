//! Build-time PTX compilation (used by build.rs): finds nvcc, compiles every kernels/*.cu
//! to PTX and writes `$OUT_DIR/kernels.rs`, which embeds, per kernel file, its PTX (when
//! nvcc was found), its source with local `#include "..."` files inlined (for run-time
//! NVRTC compilation on a GPU machine when the build had no nvcc), and its kernel names.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build_emu::kernel_names;

/// One kernels/*.cu file as seen by the build.
struct KernelFile {
    stem: String,
    path: PathBuf,
}

/// The kernel files, sorted by name (only the top level of kernels/: emu/ is the emulator).
fn kernel_files(dir: &Path) -> Vec<KernelFile> {
    let mut files: Vec<KernelFile> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "cu"))
                .map(|path| KernelFile {
                    stem: path.file_stem().unwrap().to_string_lossy().into_owned(),
                    path,
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_by(|a, b| a.stem.cmp(&b.stem));
    files
}

/// nvcc from $NVCC, $CUDA_HOME/bin, the repo's pip install (.cache/nvcc, made by .ci/run),
/// or PATH.
fn find_nvcc(root: &Path) -> Option<PathBuf> {
    let candidates = [
        env::var_os("NVCC").map(PathBuf::from),
        env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("bin/nvcc")),
        Some(root.join(".cache/nvcc/nvidia/cu13/bin/nvcc")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| {
            env::var_os("PATH").and_then(|paths| {
                env::split_paths(&paths)
                    .map(|d| d.join("nvcc"))
                    .find(|p| p.is_file())
            })
        })
}

/// The source with `#include "local.cuh"` lines replaced by the file's contents (once).
fn inline_local_includes(source: &str, dir: &Path, seen: &mut Vec<PathBuf>) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let inc = line
            .trim_start()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'));
        match inc {
            Some(file) => {
                let path = dir.join(file);
                if !seen.contains(&path) {
                    seen.push(path.clone());
                    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
                        panic!(
                            "kernels: cannot read {} included by a kernel: {e}",
                            path.display()
                        )
                    });
                    out.push_str(&inline_local_includes(
                        &text,
                        path.parent().unwrap_or(dir),
                        seen,
                    ));
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn compile_ptx(nvcc: &Path, file: &KernelFile, arch: &str, out: &Path) -> Result<(), String> {
    let output = Command::new(nvcc)
        .args([
            "-ptx",
            &format!("-arch={arch}"),
            "-std=c++17",
            "-lineinfo",
            "-I",
        ])
        .arg(file.path.parent().unwrap())
        .arg(&file.path)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nvcc failed on {}:\n{}",
            file.path.display(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Compiles the kernels and writes `$OUT_DIR/kernels.rs`.
pub fn embed_kernels() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let kernels_dir = root.join("kernels");
    for var in ["NVCC", "CUDA_HOME", "CUDA_ARCH", "SPARSEVLP_REQUIRE_PTX"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let require_ptx = env::var("SPARSEVLP_REQUIRE_PTX").is_ok_and(|v| v == "1");
    let arch = env::var("CUDA_ARCH").unwrap_or_else(|_| "compute_80".into());
    let files = kernel_files(&kernels_dir);
    let nvcc = find_nvcc(&root);
    match (&nvcc, require_ptx) {
        (None, true) => panic!(
            "SPARSEVLP_REQUIRE_PTX=1 but nvcc was not found ($NVCC, $CUDA_HOME/bin, \
             .cache/nvcc from .ci/run, PATH)"
        ),
        (None, false) if !files.is_empty() => println!(
            "cargo:warning=nvcc not found: embedding CUDA sources instead of PTX \
             (a GPU machine compiles them with NVRTC at run time)"
        ),
        _ => {}
    }
    let mut code = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.path.display());
        let raw = fs::read_to_string(&file.path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.path.display()));
        let source = inline_local_includes(&raw, &kernels_dir, &mut Vec::new());
        let ptx = nvcc.as_ref().map(|nvcc| {
            let out = out_dir.join(format!("{}.ptx", file.stem));
            if let Err(e) = compile_ptx(nvcc, file, &arch, &out) {
                panic!("{e}");
            }
            out
        });
        let src_path = out_dir.join(format!("{}.cu", file.stem));
        fs::write(&src_path, &source).expect("write inlined source");
        let _ = writeln!(
            code,
            "    KernelModule {{ name: {:?}, ptx: {}, source: include_str!({:?}), kernels: &{:?} }},",
            file.stem,
            ptx.map_or("None".into(), |p| format!("Some(include_str!({:?}))", p)),
            src_path,
            kernel_names(&raw),
        );
    }
    code.push(']');
    let _ = writeln!(code);
    fs::write(out_dir.join("kernels.rs"), code).expect("write kernels.rs");
    println!("cargo:rustc-env=SPARSEVLP_CUDA_ARCH={arch}");
}
