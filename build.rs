//! Build script: records build facts that `sparsevlp info` reports (target triple and
//! profile), and watches kernels/ — the CUDA sources it will compile to PTX once the GPU
//! path lands.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SPARSEVLP_BUILD_TARGET={target}");
    println!("cargo:rustc-env=SPARSEVLP_BUILD_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
}
