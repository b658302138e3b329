//! Build-time half of the CUDA emulator (used by build.rs): finds the kernels, generates
//! one C++ translation unit per kernel file plus the kernel table, and compiles them with
//! the fiber runtime of kernels/emu into the static library `svlp_emu` linked into the
//! crate.
//!
//! Kernel files: `kernels/*.cu` and `kernels/emu/selftest/*.cu`. A kernel is registered
//! when its file declares it as
//!
//! ```text
//! extern "C" __global__ void NAME(
//! extern "C" __global__ void __launch_bounds__(...) NAME(
//! extern "C" __global__ __launch_bounds__(...) void NAME(
//! ```
//!
//! (`__global__ extern "C" void NAME(` is accepted too, though nvcc rejects it; comments
//! and preprocessor lines are skipped; `extern "C" { ... }` blocks and
//! templates are not scanned). Each generated unit includes the shim `cuda_emu.h`, then
//! the kernel file inside `namespace { namespace svlp_emu_kernels {` (internal linkage, so
//! helpers of a shared `.cuh` never clash between files; the named inner namespace lets
//! the runtime find kernel statics in the symbol table, see shared_memory.cpp), then one
//! trampoline per kernel that unpacks `void** params` into the kernel's parameter types,
//! deduced from the function pointer.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// A kernel found in a source file.
struct Kernel {
    name: String,
    /// The file, relative to the crate root (for messages).
    source: String,
}

/// Compiles the emulator library and emits the cargo directives for it.
pub fn compile_emulator() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("svlp_emu");
    fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let emu = root.join("kernels/emu");
    watch(&emu);

    let mut sources = cu_files(&root.join("kernels"), "k");
    sources.extend(cu_files(&emu.join("selftest"), "selftest"));

    let mut build = cc::Build::new();
    let mut kernels: Vec<Kernel> = Vec::new();
    for (prefix, path) in &sources {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        let names = kernel_names(&text);
        for name in &names {
            if let Some(other) = kernels.iter().find(|k| &k.name == name) {
                panic!(
                    "CUDA emulator: kernel `{name}` is defined in both {} and {rel}",
                    other.source
                );
            }
            kernels.push(Kernel {
                name: name.clone(),
                source: rel.clone(),
            });
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let unit = out.join(format!("{prefix}_{}.cpp", sanitize(&stem)));
        write_if_changed(&unit, &translation_unit(path, &rel, &names));
        build.file(&unit);
    }
    for cu in fs::read_dir(root.join("kernels"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if cu
            .path()
            .extension()
            .is_some_and(|e| e == "cuh" || e == "h")
        {
            println!("cargo:rerun-if-changed={}", cu.path().display());
        }
    }

    kernels.sort_by(|a, b| a.name.cmp(&b.name));
    let table = out.join("kernel_table.cpp");
    write_if_changed(&table, &kernel_table(&kernels));
    build.file(&table);
    for runtime in [
        "fiber_context.cpp",
        "fiber_stack.cpp",
        "scheduler.cpp",
        "warp_ops.cpp",
        "shared_memory.cpp",
        "registry.cpp",
        "launch.cpp",
    ] {
        build.file(emu.join(runtime));
    }

    build
        .cpp(true)
        .std("c++20")
        .opt_level(2)
        .include(&emu)
        .include(emu.join("include"))
        // CUDA code type-puns freely (uint4 loads of half arrays): no strict aliasing.
        .flag("-fno-strict-aliasing")
        .flag("-fno-math-errno")
        // `#pragma unroll` is nvcc's; GCC < 13 ignores `#pragma GCC diagnostic` for it.
        .flag_if_supported("-Wno-unknown-pragmas")
        .flag_if_supported("-fstack-clash-protection")
        // __FILE__ / source_location relative to the crate: short, reproducible messages.
        .flag_if_supported(format!("-fmacro-prefix-map={}/=", root.display()));
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        build.flag("-mf16c");
    }
    build.compile("svlp_emu");
}

/// The `.cu` files directly in `dir`, sorted, each with the prefix of its generated unit.
fn cu_files(dir: &Path, prefix: &'static str) -> Vec<(&'static str, PathBuf)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (prefix, p)).collect()
}

/// Emits rerun-if-changed for every file under `dir`.
fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// A C identifier made from a file stem.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A C++ string literal holding `s`.
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The generated translation unit of one kernel file.
fn translation_unit(path: &Path, rel: &str, names: &[String]) -> String {
    let mut s = format!(
        "// Generated by kernels/emu/build_emu.rs from {rel}: the kernels of that file, \
         compiled for the CUDA emulator. Do not edit.\n\
         #include \"cuda_emu.h\"\n\
         #include \"emu_trampoline.h\"\n\n\
         #pragma GCC diagnostic push\n\
         #pragma GCC diagnostic ignored \"-Wunknown-pragmas\"\n\
         #pragma GCC diagnostic ignored \"-Wunused-function\"\n\
         namespace {{\n\
         namespace svlp_emu_kernels {{\n\
         #include {}\n\
         }}  // namespace svlp_emu_kernels\n\
         }}  // namespace\n\
         #pragma GCC diagnostic pop\n",
        c_string(&path.to_string_lossy())
    );
    for name in names {
        let _ = write!(
            s,
            "\nnamespace {{\n\
             void svlp_emu_trampoline_{name}(void** params) {{ ::svlp_emu::invoke_kernel(&svlp_emu_kernels::{name}, params); }}\n\
             constexpr auto svlp_emu_sizes_{name} = ::svlp_emu::param_sizes(&svlp_emu_kernels::{name});\n\
             }}  // namespace\n\
             extern const ::svlp_emu::KernelEntry svlp_emu_entry_{name};\n\
             const ::svlp_emu::KernelEntry svlp_emu_entry_{name} = {{\n  \
             {}, {}, &svlp_emu_trampoline_{name}, ::svlp_emu::param_count(&svlp_emu_kernels::{name}),\n  \
             svlp_emu_sizes_{name}.data()}};\n",
            c_string(name),
            c_string(rel)
        );
    }
    s
}

/// The generated table of all kernels (sorted by name).
fn kernel_table(kernels: &[Kernel]) -> String {
    let mut s = String::from(
        "// Generated by kernels/emu/build_emu.rs: every kernel the emulator can launch, \
         sorted by name. Do not edit.\n#include \"registry.h\"\n\n",
    );
    for k in kernels {
        let _ = writeln!(
            s,
            "extern const ::svlp_emu::KernelEntry svlp_emu_entry_{};",
            k.name
        );
    }
    s.push_str("\nnamespace svlp_emu {\nconst KernelEntry* const g_kernels[] = {\n");
    for k in kernels {
        let _ = writeln!(s, "    &svlp_emu_entry_{},", k.name);
    }
    let _ = write!(
        s,
        "    nullptr}};\nconst int g_kernel_count = {};\n}}  // namespace svlp_emu\n",
        kernels.len()
    );
    s
}

/// Writes `text` to `path` unless it already holds exactly that (keeps mtimes stable).
fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A token of C++ source, as far as the kernel scan needs one.
#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

/// Splits C++ source into identifiers, string literals and punctuation, dropping
/// comments, character literals, numbers and preprocessor lines.
fn tokenize(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line_start = true;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' && line_start {
            // A preprocessor line, with its backslash continuations.
            while i < b.len() && b[i] != b'\n' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if c == b'"' || c == b'\'' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            if c == b'"' {
                tokens.push(Token::Str(src[start..i.min(b.len())].to_string()));
            }
            i += 1;
            line_start = false;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            tokens.push(Token::Ident(src[start..i].to_string()));
            line_start = false;
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            line_start = false;
        } else {
            tokens.push(Token::Punct(c as char));
            i += 1;
            line_start = false;
        }
    }
    tokens
}

/// The names of the `extern "C"` `__global__` kernels of a source, in order (see the
/// module doc for the accepted forms).
pub fn kernel_names(src: &str) -> Vec<String> {
    let t = tokenize(src);
    let ident = |i: usize, s: &str| matches!(t.get(i), Some(Token::Ident(x)) if x == s);
    let mut names: Vec<String> = Vec::new();
    for i in 0..t.len() {
        if !(ident(i, "extern") && t.get(i + 1) == Some(&Token::Str("C".into()))) {
            continue;
        }
        let mut global = i > 0 && ident(i - 1, "__global__");
        let mut seen_void = false;
        let mut j = i + 2;
        loop {
            if ident(j, "__global__") {
                global = true;
                j += 1;
            } else if ident(j, "void") && !seen_void {
                seen_void = true;
                j += 1;
            } else if ident(j, "__launch_bounds__") && t.get(j + 1) == Some(&Token::Punct('(')) {
                // Skip the balanced argument list.
                let mut depth = 0usize;
                j += 1;
                while let Some(tok) = t.get(j) {
                    j += 1;
                    match tok {
                        Token::Punct('(') => depth += 1,
                        Token::Punct(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                break;
            }
        }
        if let (true, true, Some(Token::Ident(name)), Some(Token::Punct('('))) =
            (global, seen_void, t.get(j), t.get(j + 1))
        {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}
