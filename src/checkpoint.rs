//! Named-parameter checkpoints in the safetensors format.
//!
//! Saves are atomic: the file is written under a unique temporary name in the target
//! directory, synced, then renamed over the destination, so a failed or interrupted save
//! never leaves a half-written checkpoint behind nor damages an existing one. Loads never
//! panic on a corrupt file; every error names the file (and the tensor where there is one),
//! and [`load_module`] reports all problems at once and only assigns when there are none.
//! Files carry the metadata `format: pt` that Hugging Face `transformers` requires of a
//! safetensors checkpoint.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::atomic_file::write_atomically;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::{CpuStorage, DType, Tensor};

/// Writes `tensors` to `path` as safetensors, each converted to `dtype` on disk.
///
/// Names must be unique (and not the reserved `__metadata__`); tensors may live on any
/// device. The write is atomic: on
/// any failure the temporary file is removed and an existing `path` is left untouched.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)], dtype: DType) -> Result<()> {
    let mut seen = HashSet::new();
    for (name, _) in tensors {
        if name == "__metadata__" {
            return Err(checkpoint_error(
                path,
                "tensor name '__metadata__' is reserved by the safetensors format",
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(checkpoint_error(
                path,
                format!("duplicate tensor name '{name}'"),
            ));
        }
    }
    // Tensors on a GPU device are read back first.
    let host = tensors
        .iter()
        .map(|(_, t)| match t.device() {
            Device::Cpu => Ok(Cow::Borrowed(t)),
            _ => t.to_device(Device::Cpu).map(Cow::Owned),
        })
        .collect::<Result<Vec<Cow<Tensor>>>>()?;
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, _), tensor) in tensors.iter().zip(&host) {
        views.push((
            name.as_str(),
            DiskView {
                storage: tensor.cpu_storage()?,
                shape: tensor.dims(),
                dtype,
            },
        ));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| checkpoint_error(path, format!("cannot serialise: {e}")))?;
    write_atomically(path, &bytes)
}

/// Reads every tensor of a safetensors file, keeping its on-disk float dtype, sorted by
/// name. Non-float tensors and corrupt or truncated files are errors naming the file.
pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    collect_tensors(path, read_file(path, decode)?)
}

/// Reads every tensor of a safetensors file of model inputs, sorted by name: float
/// tensors keep their dtype, integer and boolean ones (token ids, masks) become f64
/// (exact below 2⁵³). Corrupt files and other dtypes are errors naming the file.
pub fn load_input_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    collect_tensors(path, read_file(path, decode_numbers)?)
}

/// The decoded tensors, or one error naming the file and every tensor that failed.
fn collect_tensors(path: &Path, decoded: Decoded) -> Result<Vec<(String, Tensor)>> {
    let mut tensors = Vec::new();
    let mut problems = Vec::new();
    for (name, decoded) in decoded {
        match decoded {
            Ok(t) => tensors.push((name, t)),
            Err(msg) => problems.push(msg),
        }
    }
    if problems.is_empty() {
        Ok(tensors)
    } else {
        Err(checkpoint_error(path, problems.join("; ")))
    }
}

/// Saves every parameter of `module` under its name, converted to `dtype` on disk.
pub fn save_module(path: &Path, module: &dyn Module, dtype: DType) -> Result<()> {
    let mut tensors = Vec::new();
    module.visit_params(&mut |p| tensors.push((p.name.clone(), p.value.clone())));
    save_tensors(path, &tensors, dtype)
}

/// Loads every parameter of `module` from `path`, converting each tensor to the
/// parameter's dtype.
///
/// All problems (missing, unexpected, wrongly shaped or non-float tensors) are collected
/// into one error; on any error the parameters are left unchanged.
pub fn load_module(path: &Path, module: &mut dyn Module) -> Result<()> {
    load_module_skipping(path, module, &|_| false)
}

/// [`load_module`], ignoring the tensors of the file whose names `skip` accepts (such as
/// buffers another framework stores beside the parameters).
pub fn load_module_skipping(
    path: &Path,
    module: &mut dyn Module,
    skip: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let mut on_disk: BTreeMap<String, std::result::Result<Tensor, String>> =
        read_file(path, decode)?
            .into_iter()
            .filter(|(name, _)| !skip(name))
            .collect();
    let mut problems = Vec::new();
    let mut values = Vec::new();
    let mut seen = HashSet::new();
    module.visit_params(&mut |p| {
        if !seen.insert(p.name.clone()) {
            problems.push(format!("the model has two parameters named '{}'", p.name));
            return;
        }
        match on_disk.remove(&p.name) {
            None => problems.push(format!("missing tensor '{}'", p.name)),
            Some(Err(msg)) => problems.push(msg),
            Some(Ok(t)) if t.dims() != p.value.dims() => problems.push(format!(
                "tensor '{}': expected shape {}, found {}",
                p.name,
                p.value.shape(),
                t.shape()
            )),
            Some(Ok(t)) => values.push(t.to_dtype(p.value.dtype())),
        }
    });
    problems.extend(
        on_disk
            .keys()
            .map(|name| format!("unexpected tensor '{name}'")),
    );
    if !problems.is_empty() {
        let msg = format!(
            "does not fit the model ({} problem{}): {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("; ")
        );
        return Err(checkpoint_error(path, msg));
    }
    let mut values = values.into_iter();
    module.visit_params_mut(&mut |p| {
        if let Some(v) = values.next() {
            p.value = v;
        }
    });
    Ok(())
}

/// A tensor as safetensors serialises it: converted to the on-disk dtype on demand, one
/// tensor at a time, so a save holds at most one converted copy besides the output.
struct DiskView<'a> {
    storage: &'a CpuStorage,
    shape: &'a [usize],
    dtype: DType,
}

impl View for DiskView<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            DType::F32 => Dtype::F32,
            DType::F64 => Dtype::F64,
            DType::BF16 => Dtype::BF16,
            DType::F16 => Dtype::F16,
        }
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if self.storage.dtype() == self.dtype {
            little_endian_bytes(Cow::Borrowed(self.storage))
        } else {
            little_endian_bytes(Cow::Owned(self.storage.to_dtype(self.dtype)))
        }
    }

    fn data_len(&self) -> usize {
        self.storage.len() * self.dtype.size_in_bytes()
    }
}

/// The elements as little-endian bytes (borrowed where the host is little-endian).
fn little_endian_bytes(storage: Cow<'_, CpuStorage>) -> Cow<'_, [u8]> {
    match storage {
        Cow::Borrowed(s) if cfg!(target_endian = "little") => Cow::Borrowed(s.as_bytes()),
        s => Cow::Owned(match s.as_ref() {
            CpuStorage::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            CpuStorage::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            CpuStorage::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            CpuStorage::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }),
    }
}

/// The tensors of a file by name: decoded, or a message naming a non-float tensor.
type Decoded = Vec<(String, std::result::Result<Tensor, String>)>;

/// Reads a whole file, decoding each tensor with `decode`, sorted by name.
fn read_file(path: &Path, decode: fn(Dtype, &[u8]) -> Option<CpuStorage>) -> Result<Decoded> {
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        let cut = truncated_tensors(&bytes)
            .map(|names| format!("; the file ends inside the data of {names}"))
            .unwrap_or_default();
        checkpoint_error(
            path,
            format!(
                "not a valid safetensors file ({} bytes): {e}{cut}",
                bytes.len()
            ),
        )
    })?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.iter() {
        let decoded = decode(view.dtype(), view.data()).ok_or_else(|| {
            format!(
                "tensor '{name}': expected a float dtype (f32/bf16/f16/f64), found {:?}",
                view.dtype()
            )
        });
        let tensor = match decoded {
            Ok(storage) => Ok(Tensor::from_storage(storage, view.shape())
                .map_err(|e| checkpoint_error(path, format!("tensor '{name}': {e}")))?),
            Err(msg) => Err(msg),
        };
        out.push((name.to_string(), tensor));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// When the header is intact but the data section is short (a truncated download or an
/// interrupted copy), the tensors whose bytes are missing, e.g. `tensor 'a' (needs bytes
/// 0..48, 20 present)`. None when the header itself cannot be read.
fn truncated_tensors(bytes: &[u8]) -> Option<String> {
    let header_len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(header_len)?)?;
    let present = bytes.len() - 8 - header_len;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut cut: Vec<(u64, String)> = map
        .iter()
        .filter_map(|(name, info)| {
            let offsets = info.get("data_offsets")?.as_array()?;
            let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
            (end > present as u64).then(|| {
                (
                    start,
                    format!("tensor '{name}' (needs bytes {start}..{end}, {present} present)"),
                )
            })
        })
        .collect();
    cut.sort();
    (!cut.is_empty()).then(|| {
        cut.into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Decodes little-endian bytes of a float dtype; `None` for any other dtype.
fn decode(dtype: Dtype, data: &[u8]) -> Option<CpuStorage> {
    fn le<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect()
    }
    Some(match dtype {
        Dtype::F32 => CpuStorage::F32(le(data, f32::from_le_bytes)),
        Dtype::F64 => CpuStorage::F64(le(data, f64::from_le_bytes)),
        Dtype::BF16 => CpuStorage::BF16(le(data, bf16::from_le_bytes)),
        Dtype::F16 => CpuStorage::F16(le(data, f16::from_le_bytes)),
        _ => return None,
    })
}

/// Decodes float dtypes as [`decode`] does, and integer and boolean dtypes into f64.
fn decode_numbers(dtype: Dtype, data: &[u8]) -> Option<CpuStorage> {
    fn wide<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> CpuStorage {
        CpuStorage::F64(
            data.chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks of N bytes")))
                .collect(),
        )
    }
    Some(match dtype {
        Dtype::I64 => wide(data, |b| i64::from_le_bytes(b) as f64),
        Dtype::I32 => wide(data, |b| f64::from(i32::from_le_bytes(b))),
        Dtype::I16 => wide(data, |b| f64::from(i16::from_le_bytes(b))),
        Dtype::I8 => wide(data, |b: [u8; 1]| f64::from(b[0] as i8)),
        Dtype::U64 => wide(data, |b| u64::from_le_bytes(b) as f64),
        Dtype::U32 => wide(data, |b| f64::from(u32::from_le_bytes(b))),
        Dtype::U16 => wide(data, |b| f64::from(u16::from_le_bytes(b))),
        Dtype::U8 | Dtype::BOOL => wide(data, |b: [u8; 1]| f64::from(b[0])),
        _ => return decode(dtype, data),
    })
}

/// A checkpoint error naming `path`.
fn checkpoint_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_non_float_dtypes() {
        assert!(decode(Dtype::I64, &[0; 8]).is_none());
        assert!(decode(Dtype::BOOL, &[1]).is_none());
        let s = decode(Dtype::F32, &1.5f32.to_le_bytes()).unwrap();
        assert_eq!(s, CpuStorage::F32(vec![1.5]));
    }

    #[test]
    fn decode_numbers_widens_integers_and_booleans() {
        let ids: Vec<u8> = [-3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            decode_numbers(Dtype::I64, &ids).unwrap(),
            CpuStorage::F64(vec![-3.0, 7.0])
        );
        assert_eq!(
            decode_numbers(Dtype::BOOL, &[1, 0]).unwrap(),
            CpuStorage::F64(vec![1.0, 0.0])
        );
        assert_eq!(
            decode_numbers(Dtype::F32, &2.5f32.to_le_bytes()).unwrap(),
            CpuStorage::F32(vec![2.5])
        );
        assert!(decode_numbers(Dtype::C64, &[0; 8]).is_none());
    }
}
