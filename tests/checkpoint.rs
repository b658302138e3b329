//! Checkpoint round trips, dtype conversion, corrupt-file handling, module fitting errors
//! and atomic writes.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use sparsevlp::checkpoint::{load_module, load_tensors, save_module, save_tensors};
use sparsevlp::nn::{Module, Param};
use sparsevlp::{DType, Error, Tensor};

/// A tiny model: a linear layer and a norm scale.
#[derive(Debug, Clone)]
struct Tiny {
    weight: Param,
    bias: Param,
    scale: Param,
}

impl Tiny {
    fn new(seed: u64, dtype: DType) -> Tiny {
        Tiny {
            weight: Param::new("x.weight", Tensor::randn([4, 3], 1.0, seed, dtype)),
            bias: Param::new("x.bias", Tensor::randn([4], 1.0, seed + 1, dtype)),
            scale: Param::new("norm.scale", Tensor::randn([3], 1.0, seed + 2, dtype)),
        }
    }

    fn values(&self) -> Vec<Tensor> {
        vec![
            self.weight.value.clone(),
            self.bias.value.clone(),
            self.scale.value.clone(),
        ]
    }
}

impl Module for Tiny {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        f(&self.bias);
        f(&self.scale);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        f(&mut self.bias);
        f(&mut self.scale);
    }
}

/// Writes raw safetensors with the crate directly (any dtype, bytes given).
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The module's tensors as named pairs, optionally renamed / reshaped / dropped.
fn named(m: &Tiny) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.visit_params(&mut |p| out.push((p.name.clone(), p.value.clone())));
    out
}

fn assert_names_file(e: &Error, path: &Path) {
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn f32_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    let m = Tiny::new(1, DType::F32);
    save_module(&path, &m, DType::F32).unwrap();
    let mut other = Tiny::new(99, DType::F32);
    load_module(&path, &mut other).unwrap();
    assert_eq!(other.values(), m.values());
    // load_tensors returns the same, sorted by name, in the on-disk dtype.
    let loaded = load_tensors(&path).unwrap();
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["norm.scale", "x.bias", "x.weight"]);
    let by_name: HashMap<_, _> = named(&m).into_iter().collect();
    for (n, t) in &loaded {
        assert_eq!(t, &by_name[n]);
    }
}

#[test]
fn f64_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny64.safetensors");
    let m = Tiny::new(2, DType::F64);
    save_module(&path, &m, DType::F64).unwrap();
    let mut other = Tiny::new(3, DType::F64);
    load_module(&path, &mut other).unwrap();
    assert_eq!(other.values(), m.values());
}

#[test]
fn half_precision_round_trips_within_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, rel) in [(DType::BF16, 1.0 / 256.0), (DType::F16, 1.0 / 2048.0)] {
        let path = dir.path().join(format!("tiny-{dtype}.safetensors"));
        let m = Tiny::new(4, DType::F32);
        save_module(&path, &m, dtype).unwrap();
        // On disk the tensors are in the half dtype.
        for (_, t) in load_tensors(&path).unwrap() {
            assert_eq!(t.dtype(), dtype);
        }
        let mut other = Tiny::new(5, DType::F32);
        load_module(&path, &mut other).unwrap();
        for (a, b) in other.values().iter().zip(m.values()) {
            assert_eq!(a.dtype(), DType::F32);
            for (x, y) in a.to_vec_f64().iter().zip(b.to_vec_f64()) {
                assert!((x - y).abs() <= rel * y.abs(), "{dtype}: {x} vs {y}");
            }
        }
    }
    let size = |d: DType| {
        let p = dir.path().join(format!("tiny-{d}.safetensors"));
        std::fs::metadata(p).unwrap().len()
    };
    assert_eq!(size(DType::BF16), size(DType::F16));
}

#[test]
fn load_converts_to_the_parameter_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.safetensors");
    let m = Tiny::new(6, DType::F64);
    save_module(&path, &m, DType::F32).unwrap();
    let mut other = Tiny::new(7, DType::F64);
    load_module(&path, &mut other).unwrap();
    for (a, b) in other.values().iter().zip(m.values()) {
        assert_eq!(a.dtype(), DType::F64);
        assert_eq!(a, &b.to_dtype(DType::F32).to_dtype(DType::F64));
    }
    // And into a bf16 model from f32 on disk.
    let mut half = Tiny::new(8, DType::BF16);
    load_module(&path, &mut half).unwrap();
    for (a, b) in half.values().iter().zip(m.values()) {
        assert_eq!(a.dtype(), DType::BF16);
        assert_eq!(a, &b.to_dtype(DType::F32).to_dtype(DType::BF16));
    }
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.safetensors");
    save_module(&path, &Tiny::new(9, DType::F32), DType::F32).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts = [
        0,
        3,
        8,
        9,
        8 + header_len / 2,
        8 + header_len,
        8 + header_len + 5,
        bytes.len() - 1,
    ];
    for cut in cuts {
        let cut_path = dir.path().join(format!("cut-{cut}.safetensors"));
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let e = load_tensors(&cut_path).unwrap_err();
        assert!(matches!(e, Error::Checkpoint { .. }), "cut {cut}: {e}");
        assert_names_file(&e, &cut_path);
        let mut m = Tiny::new(10, DType::F32);
        let before = m.values();
        let e = load_module(&cut_path, &mut m).unwrap_err();
        assert_names_file(&e, &cut_path);
        assert_eq!(m.values(), before);
    }
    // A file cut inside the data section names the tensors whose bytes are missing.
    let cut_path = dir.path().join("cut-data.safetensors");
    std::fs::write(&cut_path, &bytes[..bytes.len() - 1]).unwrap();
    let msg = load_tensors(&cut_path).unwrap_err().to_string();
    assert!(
        msg.contains("the file ends inside the data of tensor '"),
        "{msg}"
    );
    let mut m = Tiny::new(10, DType::F32);
    let last = m.param_names().into_iter().max().unwrap();
    let msg = load_module(&cut_path, &mut m).unwrap_err().to_string();
    assert!(msg.contains(&format!("tensor '{last}'")), "{msg}");
    // A trailing extra byte is as wrong as a missing one.
    let long = dir.path().join("long.safetensors");
    let mut extra = bytes.clone();
    extra.push(0);
    std::fs::write(&long, extra).unwrap();
    assert_names_file(&load_tensors(&long).unwrap_err(), &long);
}

#[test]
fn corrupt_headers_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.safetensors");
    save_module(&path, &Tiny::new(11, DType::F32), DType::F32).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let bad = dir.path().join("bad.safetensors");
    // Flip every byte of the length prefix and the header in turn: each is an error or
    // (for flips inside e.g. a name or padding) a still-valid file, never a panic.
    let mut errors = 0;
    for i in 0..8 + header_len {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            std::fs::write(&bad, &b).unwrap();
            if let Err(e) = load_tensors(&bad) {
                assert_names_file(&e, &bad);
                errors += 1;
            }
        }
    }
    assert!(errors > 0);
    // Specific corruptions: huge header length, invalid JSON, offsets out of range.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let json = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]"#;
    let mut bad_json = (json.len() as u64).to_le_bytes().to_vec();
    bad_json.extend_from_slice(json);
    let offsets = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#;
    let mut bad_offsets = (offsets.len() as u64).to_le_bytes().to_vec();
    bad_offsets.extend_from_slice(offsets);
    bad_offsets.extend_from_slice(&[0; 8]);
    let shape = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
    let mut bad_shape = (shape.len() as u64).to_le_bytes().to_vec();
    bad_shape.extend_from_slice(shape);
    bad_shape.extend_from_slice(&[0; 8]);
    for (what, b) in [
        ("huge header length", huge),
        ("invalid JSON", bad_json),
        ("offsets out of range", bad_offsets),
        ("shape does not match offsets", bad_shape),
        ("not UTF-8", {
            let mut b = bytes.clone();
            b[8] = 0xff;
            b
        }),
    ] {
        std::fs::write(&bad, &b).unwrap();
        let e = load_tensors(&bad).unwrap_err();
        assert!(matches!(e, Error::Checkpoint { .. }), "{what}: {e}");
        assert_names_file(&e, &bad);
    }
}

#[test]
fn wrong_shape_names_tensor_shapes_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.safetensors");
    let m = Tiny::new(12, DType::F32);
    let mut tensors = named(&m);
    tensors[0].1 = Tensor::randn([3, 4], 1.0, 1, DType::F32);
    save_tensors(&path, &tensors, DType::F32).unwrap();
    let mut target = Tiny::new(13, DType::F32);
    let before = target.values();
    let e = load_module(&path, &mut target).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tensor 'x.weight': expected shape [4, 3], found [3, 4]"),
        "{msg}"
    );
    assert_names_file(&e, &path);
    assert_eq!(target.values(), before, "a failed load changed parameters");
}

#[test]
fn non_float_tensors_are_named_with_their_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    let m = Tiny::new(14, DType::F32);
    let w = f32_bytes(&m.weight.value.to_vec_f32());
    let s = f32_bytes(&m.scale.value.to_vec_f32());
    let ints: Vec<u8> = (0..4i64).flat_map(|x| x.to_le_bytes()).collect();
    write_raw(
        &path,
        &[
            ("x.weight", Dtype::F32, vec![4, 3], w),
            ("x.bias", Dtype::I64, vec![4], ints),
            ("norm.scale", Dtype::F32, vec![3], s),
            ("flags", Dtype::BOOL, vec![2], vec![0, 1]),
        ],
    );
    let e = load_tensors(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tensor 'x.bias': expected a float dtype (f32/bf16/f16/f64), found I64"),
        "{msg}"
    );
    assert!(msg.contains("'flags'") && msg.contains("BOOL"), "{msg}");
    assert_names_file(&e, &path);

    let mut target = Tiny::new(15, DType::F32);
    let before = target.values();
    let msg = load_module(&path, &mut target).unwrap_err().to_string();
    assert!(
        msg.contains("tensor 'x.bias'") && msg.contains("found I64"),
        "{msg}"
    );
    assert!(msg.contains("unexpected tensor 'flags'"), "{msg}");
    assert_eq!(target.values(), before);
}

#[test]
fn missing_and_unexpected_tensors_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.safetensors");
    let m = Tiny::new(16, DType::F32);
    let mut tensors = named(&m);
    tensors.retain(|(n, _)| n != "x.bias");
    tensors[0].0 = "x.weights".into();
    tensors.push(("extra".into(), Tensor::full([2], 1.0, DType::F32)));
    save_tensors(&path, &tensors, DType::F32).unwrap();
    let mut target = Tiny::new(17, DType::F32);
    let before = target.values();
    let e = load_module(&path, &mut target).unwrap_err();
    let msg = e.to_string();
    for want in [
        "missing tensor 'x.weight'",
        "missing tensor 'x.bias'",
        "unexpected tensor 'x.weights'",
        "unexpected tensor 'extra'",
        "4 problems",
    ] {
        assert!(msg.contains(want), "no {want:?} in {msg}");
    }
    assert_names_file(&e, &path);
    assert_eq!(target.values(), before);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.safetensors");
    let e = load_tensors(&path).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_names_file(&e, &path);
    let mut m = Tiny::new(18, DType::F32);
    assert_names_file(&load_module(&path, &mut m).unwrap_err(), &path);
}

#[test]
fn saves_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.safetensors");
    for i in 0..3 {
        save_module(&path, &Tiny::new(20 + i, DType::F32), DType::BF16).unwrap();
    }
    assert_eq!(dir_entries(dir.path()), ["clean.safetensors"]);
    let mut m = Tiny::new(30, DType::F32);
    load_module(&path, &mut m).unwrap();
}

#[test]
fn saving_into_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/model.safetensors");
    let e = save_module(&path, &Tiny::new(31, DType::F32), DType::F32).unwrap_err();
    assert_names_file(&e, &path);
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn failed_saves_do_not_damage_an_existing_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.safetensors");
    let m = Tiny::new(32, DType::F32);
    save_module(&path, &m, DType::F32).unwrap();
    let original = std::fs::read(&path).unwrap();

    let t = Tensor::full([2], 1.0, DType::F32);
    let dup = vec![("a".to_string(), t.clone()), ("a".to_string(), t.clone())];
    let e = save_tensors(&path, &dup, DType::F32).unwrap_err();
    assert!(e.to_string().contains("duplicate tensor name 'a'"), "{e}");
    assert_names_file(&e, &path);
    let reserved = vec![("__metadata__".to_string(), t)];
    assert_names_file(
        &save_tensors(&path, &reserved, DType::F32).unwrap_err(),
        &path,
    );

    assert_eq!(std::fs::read(&path).unwrap(), original);
    assert_eq!(dir_entries(dir.path()), ["keep.safetensors"]);
    let mut other = Tiny::new(33, DType::F32);
    load_module(&path, &mut other).unwrap();
    assert_eq!(other.values(), m.values());
}

#[test]
fn a_directory_in_the_way_fails_cleanly() {
    // The rename fails when the destination is a non-empty directory; the temporary file
    // must be cleaned up and the error must name the path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("occupied");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), b"x").unwrap();
    let e = save_module(&path, &Tiny::new(34, DType::F32), DType::F32).unwrap_err();
    assert_names_file(&e, &path);
    assert_eq!(dir_entries(dir.path()), ["occupied"]);
}

#[test]
fn empty_and_scalar_tensors_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    let tensors = vec![
        ("empty".to_string(), Tensor::zeros([0, 3], DType::F32)),
        (
            "scalar".to_string(),
            Tensor::full(Vec::<usize>::new(), 2.5, DType::F64),
        ),
    ];
    save_tensors(&path, &tensors, DType::F64).unwrap();
    let loaded = load_tensors(&path).unwrap();
    assert_eq!(loaded[0].0, "empty");
    assert_eq!(loaded[0].1.dims(), [0, 3]);
    assert_eq!(loaded[1].1.dims(), [] as [usize; 0]);
    assert_eq!(loaded[1].1.to_vec_f64(), [2.5]);
}
