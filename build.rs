//! Build script: records build facts that `sparsevlp info` reports, compiles kernels/*.cu
//! to PTX and embeds it (see kernels/build_ptx.rs), and builds the CUDA emulator.

#[path = "kernels/emu/build_emu.rs"]
mod build_emu;
#[path = "kernels/build_ptx.rs"]
mod build_ptx;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SPARSEVLP_BUILD_TARGET={target}");
    println!("cargo:rustc-env=SPARSEVLP_BUILD_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
    build_ptx::embed_kernels();
    build_emu::compile_emulator();
}
