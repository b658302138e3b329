//! Region features and boxes for dual-stream models (LXMERT style), stored in one
//! safetensors file:
//!
//! | tensor | dtype | shape | meaning |
//! |---|---|---|---|
//! | `image_ids` | I64 | `[N]` | the image of each row |
//! | `features` | F32, F16 or BF16 | `[N, R, D]` | region features, R regions per image |
//! | `boxes` | F32, F16 or BF16 | `[N, R, 4]` | normalised boxes (x1, y1, x2, y2) in [0, 1] |
//! | `num_boxes` | I64 (optional) | `[N]` | valid regions per image (the rest is padding) |
//!
//! Without `num_boxes` every region is valid.

use std::collections::HashMap;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::Result;

use super::files::{file_error, io_error, write_atomically};

/// Region features and boxes of a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionFeatures {
    num_regions: usize,
    dim: usize,
    image_ids: Vec<u64>,
    rows: HashMap<u64, usize>,
    features: Vec<f32>,
    boxes: Vec<f32>,
    counts: Vec<usize>,
}

impl RegionFeatures {
    /// Features `[N, R, D]`, boxes `[N, R, 4]` and valid-region counts `[N]` for the
    /// images `image_ids` (distinct). Errors name `source`.
    pub fn new(
        image_ids: Vec<u64>,
        num_regions: usize,
        dim: usize,
        features: Vec<f32>,
        boxes: Vec<f32>,
        counts: Vec<usize>,
        source: &Path,
    ) -> Result<RegionFeatures> {
        let n = image_ids.len();
        let check = |name: &str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(file_error(
                    source,
                    format!("tensor '{name}': {len} elements, expected {want}"),
                ))
            }
        };
        check("features", features.len(), n * num_regions * dim)?;
        check("boxes", boxes.len(), n * num_regions * 4)?;
        check("num_boxes", counts.len(), n)?;
        if let Some((i, c)) = counts.iter().enumerate().find(|(_, &c)| c > num_regions) {
            return Err(file_error(
                source,
                format!(
                    "image_id {}: num_boxes {c} exceeds the {num_regions} regions",
                    image_ids[i]
                ),
            ));
        }
        if let Some(i) = features.iter().chain(&boxes).position(|x| !x.is_finite()) {
            let (name, row) = if i < features.len() {
                ("features", i / (num_regions * dim).max(1))
            } else {
                ("boxes", (i - features.len()) / (num_regions * 4).max(1))
            };
            return Err(file_error(
                source,
                format!(
                    "tensor '{name}': non-finite value for image_id {}",
                    image_ids[row]
                ),
            ));
        }
        let mut rows = HashMap::with_capacity(n);
        for (row, &id) in image_ids.iter().enumerate() {
            if rows.insert(id, row).is_some() {
                return Err(file_error(source, format!("image_id {id} appears twice")));
            }
        }
        Ok(RegionFeatures {
            num_regions,
            dim,
            image_ids,
            rows,
            features,
            boxes,
            counts,
        })
    }

    /// Reads a features file (format in the module doc).
    pub fn load(path: &Path) -> Result<RegionFeatures> {
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| file_error(path, format!("not a valid safetensors file: {e}")))?;
        let tensor = |name: &str| {
            st.tensor(name)
                .map_err(|_| file_error(path, format!("no tensor '{name}'")))
        };
        let ids = tensor("image_ids")?;
        let features = tensor("features")?;
        let boxes = tensor("boxes")?;
        let n = match ids.shape() {
            [n] => *n,
            s => return Err(shape_error(path, "image_ids", s, "[N]")),
        };
        let (r, d) = match features.shape() {
            [m, r, d] if *m == n => (*r, *d),
            s => return Err(shape_error(path, "features", s, &format!("[{n}, R, D]"))),
        };
        if boxes.shape() != [n, r, 4] {
            return Err(shape_error(
                path,
                "boxes",
                boxes.shape(),
                &format!("[{n}, {r}, 4]"),
            ));
        }
        let image_ids = ints(&ids, path, "image_ids")?;
        let counts = match st.tensor("num_boxes") {
            Ok(t) if t.shape() == [n] => ints(&t, path, "num_boxes")?,
            Ok(t) => return Err(shape_error(path, "num_boxes", t.shape(), &format!("[{n}]"))),
            Err(_) => vec![r as u64; n],
        };
        RegionFeatures::new(
            image_ids,
            r,
            d,
            floats(&features, path, "features")?,
            floats(&boxes, path, "boxes")?,
            counts.into_iter().map(|c| c as usize).collect(),
            path,
        )
    }

    /// Writes the features file (F32 features and boxes, I64 ids and counts), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let le = |xs: &[f32]| -> Vec<u8> { xs.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let le64 = |xs: &mut dyn Iterator<Item = u64>| -> Vec<u8> {
            xs.flat_map(|x| (x as i64).to_le_bytes()).collect()
        };
        let ids = le64(&mut self.image_ids.iter().copied());
        let counts = le64(&mut self.counts.iter().map(|&c| c as u64));
        let features = le(&self.features);
        let boxes = le(&self.boxes);
        let (n, r) = (self.image_ids.len(), self.num_regions);
        let view = |dtype, shape: Vec<usize>, data| {
            TensorView::new(dtype, shape, data)
                .map_err(|e| file_error(path, format!("cannot lay out a tensor: {e}")))
        };
        let tensors = vec![
            ("boxes", view(Dtype::F32, vec![n, r, 4], &boxes)?),
            (
                "features",
                view(Dtype::F32, vec![n, r, self.dim], &features)?,
            ),
            ("image_ids", view(Dtype::I64, vec![n], &ids)?),
            ("num_boxes", view(Dtype::I64, vec![n], &counts)?),
        ];
        let bytes = safetensors::serialize(tensors, None)
            .map_err(|e| file_error(path, format!("cannot serialise: {e}")))?;
        write_atomically(path, &bytes)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.image_ids.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.image_ids.is_empty()
    }

    /// Regions per image (R).
    pub fn num_regions(&self) -> usize {
        self.num_regions
    }

    /// Feature size (D).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The image ids, by row.
    pub fn image_ids(&self) -> &[u64] {
        &self.image_ids
    }

    /// The row of an image.
    pub fn row(&self, image_id: u64) -> Option<usize> {
        self.rows.get(&image_id).copied()
    }

    /// The `[R, D]` features of a row.
    pub fn features(&self, row: usize) -> &[f32] {
        let k = self.num_regions * self.dim;
        &self.features[row * k..(row + 1) * k]
    }

    /// The `[R, 4]` boxes of a row.
    pub fn boxes(&self, row: usize) -> &[f32] {
        let k = self.num_regions * 4;
        &self.boxes[row * k..(row + 1) * k]
    }

    /// The number of valid regions of a row.
    pub fn count(&self, row: usize) -> usize {
        self.counts[row]
    }
}

/// A shape error naming the tensor.
fn shape_error(path: &Path, name: &str, found: &[usize], want: &str) -> crate::Error {
    file_error(
        path,
        format!("tensor '{name}': shape {found:?}, expected {want}"),
    )
}

/// The elements of an I64 tensor, which must be non-negative.
fn ints(t: &TensorView<'_>, path: &Path, name: &str) -> Result<Vec<u64>> {
    if t.dtype() != Dtype::I64 {
        return Err(file_error(
            path,
            format!("tensor '{name}': dtype {:?}, expected I64", t.dtype()),
        ));
    }
    t.data()
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::try_from(i64::from_le_bytes(b))
                .map_err(|_| file_error(path, format!("tensor '{name}': negative value")))
        })
        .collect()
}

/// The elements of a float tensor, widened to f32.
fn floats(t: &TensorView<'_>, path: &Path, name: &str) -> Result<Vec<f32>> {
    let data = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(file_error(
                path,
                format!("tensor '{name}': dtype {other:?}, expected F32, F16 or BF16"),
            ))
        }
    })
}
