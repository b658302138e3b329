//! Visual inputs: raw images decoded, resized and padded onto a square canvas (cut into
//! patches at batch time, for single-stream models), region features from a safetensors
//! file (dual-stream models), or region features computed from the canvas on a fixed grid
//! when no detector features exist.
//!
//! Decoding is parallel (rayon). Decoded canvases are cached in one binary file
//! (`canvas-{size}.bin` in the cache directory) keyed by the canvas size and every image's
//! path, length and modification time, so a second load reads one file instead of
//! decoding every image; any change to an image, the template or the size rebuilds it.
//! The whole set of canvases is held in memory (u8, size² · 3 bytes per image).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use image::imageops::FilterType;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{mix64, seed_for};

use super::features::RegionFeatures;
use super::files::{file_error, io_error, write_atomically};
use super::vqa::VqaDataset;

/// Bumped whenever the cache layout or the decoding changes.
const CACHE_VERSION: u64 = 1;
/// The largest canvas side accepted (canvases are held in memory).
const MAX_CANVAS: usize = 4096;
/// The first bytes of a canvas cache file.
const CACHE_MAGIC: &[u8; 8] = b"SVLPCNV1";

/// How images become patches: canvas size, patch size and per-channel normalisation
/// (ViLT's mean = std = 0.5 by default, mapping pixels to [-1, 1]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageConfig {
    /// Side of the square canvas in pixels (a multiple of `patch`).
    pub size: usize,
    /// Side of a square patch in pixels.
    pub patch: usize,
    /// Per-channel mean subtracted from pixels in [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation pixels are divided by.
    pub std: [f32; 3],
}

impl Default for ImageConfig {
    /// A 64-pixel canvas in 8-pixel patches (64 patches), ViLT normalisation.
    fn default() -> Self {
        ImageConfig {
            size: 64,
            patch: 8,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}

impl ImageConfig {
    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        (self.size / self.patch).pow(2)
    }

    /// Values per patch: 3 · patch², laid out channel, row, column — the order of a
    /// `Conv2d(3, hidden, patch, stride=patch)` weight reshaped to `[hidden, 3·patch²]`.
    pub fn patch_dim(&self) -> usize {
        3 * self.patch * self.patch
    }

    fn validate(&self) -> Result<()> {
        if self.patch == 0 || self.size == 0 || !self.size.is_multiple_of(self.patch) {
            return Err(Error::invalid(format!(
                "image size {} must be a positive multiple of the patch size {}",
                self.size, self.patch
            )));
        }
        if self.size > MAX_CANVAS {
            return Err(Error::invalid(format!(
                "image size {} is larger than {MAX_CANVAS}",
                self.size
            )));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::invalid("image normalisation std must be positive"));
        }
        Ok(())
    }
}

/// Region features computed from the canvas on a fixed grid: one region per cell, with
/// the cell's mean and standard deviation per channel and its average-pooled
/// `pool × pool` thumbnail (values in [0, 1]); boxes are the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridConfig {
    /// Side of the square canvas images are decoded to.
    pub size: usize,
    /// Cells per side (regions = cells²).
    pub cells: usize,
    /// Side of each cell's pooled thumbnail.
    pub pool: usize,
}

impl Default for GridConfig {
    /// A 64-pixel canvas, 4 × 4 cells, 2 × 2 thumbnails (18 values per region).
    fn default() -> Self {
        GridConfig {
            size: 64,
            cells: 4,
            pool: 2,
        }
    }
}

impl GridConfig {
    /// Values per region: 3 means, 3 standard deviations, 3 · pool² thumbnail values.
    pub fn dim(&self) -> usize {
        6 + 3 * self.pool * self.pool
    }

    fn validate(&self) -> Result<()> {
        if self.cells == 0 || self.pool == 0 || self.size < self.cells {
            return Err(Error::invalid(format!(
                "grid regions: need cells ≥ 1, pool ≥ 1 and size ≥ cells (got {self:?})"
            )));
        }
        if self.size > MAX_CANVAS {
            return Err(Error::invalid(format!(
                "image size {} is larger than {MAX_CANVAS}",
                self.size
            )));
        }
        Ok(())
    }
}

/// Which visual input a model takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VisualKind {
    /// Image patches from raw images (single-stream models such as ViLT).
    Patches(ImageConfig),
    /// Region features + boxes from the manifest's safetensors file (LXMERT style).
    Regions,
    /// Region features computed from raw images on a fixed grid.
    Grid(GridConfig),
}

/// What the canvas cache did on the last load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// The canvases were read from the cache.
    Hit,
    /// The images were decoded and the cache was written.
    Written,
    /// The images were decoded; no cache was asked for (or none applies).
    Off,
    /// The images were decoded but the cache could not be written (why).
    NotWritten(String),
}

/// Decoded images on square canvases.
#[derive(Debug, Clone)]
struct Canvases {
    size: usize,
    pixels: Vec<u8>,
    /// Width and height of the image content at the canvas's top-left; the rest is padding.
    extents: Vec<(u16, u16)>,
}

impl Canvases {
    fn pixels(&self, row: usize) -> &[u8] {
        let k = self.size * self.size * 3;
        &self.pixels[row * k..(row + 1) * k]
    }
}

/// The visual inputs derived from decoded canvases.
#[derive(Debug, Clone, Copy)]
enum Derived {
    Patches(ImageConfig),
    Grid(GridConfig),
}

/// What a store holds.
#[derive(Debug, Clone)]
enum Stored {
    Canvases(Canvases, ImageConfig),
    Regions(RegionFeatures),
}

/// The visual inputs of every image a dataset refers to, ready for batching.
#[derive(Debug, Clone)]
pub struct VisualStore {
    rows: HashMap<u64, usize>,
    stored: Stored,
    cache: CacheStatus,
}

impl VisualStore {
    /// Loads the visual input of every image referred to by any split of `dataset`.
    ///
    /// Raw images come from the manifest's `images` entry, region features from its
    /// `features` entry. With `cache_dir`, decoded canvases are cached there (created if
    /// needed). A missing or undecodable image is an error naming the file, the image id
    /// and a question that refers to it.
    pub fn load(dataset: &VqaDataset, kind: VisualKind, cache_dir: Option<&Path>) -> Result<Self> {
        let refs = dataset.image_references();
        let mut ids: Vec<u64> = refs.keys().copied().collect();
        ids.sort_unstable();
        let record = |id: u64| {
            refs.get(&id).map_or(String::new(), |(file, q)| {
                format!(" (question_id {q} in {})", file.display())
            })
        };
        let target = match kind {
            VisualKind::Regions => return Self::load_regions(dataset, &ids, &record),
            VisualKind::Patches(cfg) => {
                cfg.validate()?;
                Derived::Patches(cfg)
            }
            VisualKind::Grid(cfg) => {
                cfg.validate()?;
                Derived::Grid(cfg)
            }
        };
        let size = match target {
            Derived::Patches(cfg) => cfg.size,
            Derived::Grid(cfg) => cfg.size,
        };
        let (dir, spec) = dataset.image_source().ok_or_else(|| {
            file_error(
                dataset.root(),
                "the dataset names no images (\"images\" in dataset.json)",
            )
        })?;
        let paths = ids
            .iter()
            .map(|&id| Ok(dir.join(spec.file_name(id)?)))
            .collect::<Result<Vec<PathBuf>>>()?;
        let (canvases, cache) = load_canvases(&ids, &paths, size, cache_dir, &record)?;
        let rows = ids.iter().enumerate().map(|(row, &id)| (id, row)).collect();
        let stored = match target {
            Derived::Patches(cfg) => Stored::Canvases(canvases, cfg),
            Derived::Grid(cfg) => Stored::Regions(grid_regions(&canvases, &ids, cfg)?),
        };
        Ok(VisualStore {
            rows,
            stored,
            cache,
        })
    }

    /// A store of the region features named by the manifest.
    fn load_regions(
        dataset: &VqaDataset,
        ids: &[u64],
        record: &dyn Fn(u64) -> String,
    ) -> Result<Self> {
        let path = dataset.features_file().ok_or_else(|| {
            file_error(
                dataset.root(),
                "the dataset names no region features (\"features\" in dataset.json)",
            )
        })?;
        let feats = RegionFeatures::load(&path)?;
        let mut rows = HashMap::with_capacity(ids.len());
        for &id in ids {
            let row = feats.row(id).ok_or_else(|| {
                file_error(
                    &path,
                    format!("no region features for image_id {id}{}", record(id)),
                )
            })?;
            rows.insert(id, row);
        }
        Ok(VisualStore {
            rows,
            stored: Stored::Regions(feats),
            cache: CacheStatus::Off,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the store holds no image.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of an image.
    pub fn row(&self, image_id: u64) -> Option<usize> {
        self.rows.get(&image_id).copied()
    }

    /// What the canvas cache did.
    pub fn cache_status(&self) -> &CacheStatus {
        &self.cache
    }

    /// The patch configuration, for a patch store.
    pub fn image_config(&self) -> Option<&ImageConfig> {
        match &self.stored {
            Stored::Canvases(_, cfg) => Some(cfg),
            Stored::Regions(_) => None,
        }
    }

    /// The region features, for a region or grid store.
    pub fn regions(&self) -> Option<&RegionFeatures> {
        match &self.stored {
            Stored::Regions(r) => Some(r),
            Stored::Canvases(..) => None,
        }
    }

    /// Writes the normalised patches `[P, 3·p²]` of `row` into `out` and their mask `[P]`
    /// (1 where a patch shows some of the image) into `mask`; padding pixels are 0.
    /// Does nothing for a region store.
    pub(crate) fn write_patches(&self, row: usize, out: &mut [f32], mask: &mut [f32]) {
        let Stored::Canvases(canvases, cfg) = &self.stored else {
            return;
        };
        let (s, p) = (cfg.size, cfg.patch);
        let per_side = s / p;
        let pixels = canvases.pixels(row);
        let (w, h) = canvases.extents[row];
        let (w, h) = (w as usize, h as usize);
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * cfg.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| cfg.mean[c] / cfg.std[c]);
        for py in 0..per_side {
            for px in 0..per_side {
                let index = py * per_side + px;
                mask[index] = if py * p < h && px * p < w { 1.0 } else { 0.0 };
                let patch = &mut out[index * 3 * p * p..(index + 1) * 3 * p * p];
                for c in 0..3 {
                    for y in 0..p {
                        let (iy, dst) = (py * p + y, &mut patch[(c * p + y) * p..][..p]);
                        for (x, d) in dst.iter_mut().enumerate() {
                            let ix = px * p + x;
                            *d = if iy < h && ix < w {
                                pixels[(iy * s + ix) * 3 + c] as f32 * scale[c] - shift[c]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Decodes (or reads from the cache) the canvases of `ids` at `paths`.
fn load_canvases(
    ids: &[u64],
    paths: &[PathBuf],
    size: usize,
    cache_dir: Option<&Path>,
    record: &(dyn Fn(u64) -> String + Sync),
) -> Result<(Canvases, CacheStatus)> {
    let stamps = ids
        .par_iter()
        .zip(paths)
        .map(|(&id, path)| {
            let meta = std::fs::metadata(path).map_err(|e| missing(path, id, record, e))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            Ok(seed_for(
                mix64(id ^ mix64(meta.len() ^ mix64(modified))),
                &path.to_string_lossy(),
            ))
        })
        .collect::<Result<Vec<u64>>>()?;
    let key = stamps
        .iter()
        .fold(mix64(CACHE_VERSION ^ mix64(size as u64)), |acc, &s| {
            mix64(acc ^ s)
        });
    let cache_file = cache_dir.map(|d| d.join(format!("canvas-{size}.bin")));
    if let Some(file) = &cache_file {
        if let Some(canvases) = read_cache(file, key, ids, size) {
            return Ok((canvases, CacheStatus::Hit));
        }
    }
    let decoded = ids
        .par_iter()
        .zip(paths)
        .map(|(&id, path)| {
            decode(path, size)
                .map_err(|e| file_error(path, format!("image_id {id}{}: {e}", record(id))))
        })
        .collect::<Vec<_>>()
        .into_iter()
        // The first bad image in record order, whichever thread found it first.
        .collect::<Result<Vec<_>>>()?;
    let mut pixels = Vec::with_capacity(ids.len() * size * size * 3);
    let mut extents = Vec::with_capacity(ids.len());
    for (canvas, extent) in decoded {
        pixels.extend_from_slice(&canvas);
        extents.push(extent);
    }
    let canvases = Canvases {
        size,
        pixels,
        extents,
    };
    let status = match (&cache_file, cache_dir) {
        (Some(file), Some(dir)) => match std::fs::create_dir_all(dir)
            .map_err(io_error(dir))
            .and_then(|()| write_cache(file, key, ids, &canvases))
        {
            Ok(()) => CacheStatus::Written,
            Err(e) => CacheStatus::NotWritten(e.to_string()),
        },
        _ => CacheStatus::Off,
    };
    Ok((canvases, status))
}

/// The error for an image that cannot be read.
fn missing(path: &Path, id: u64, record: &dyn Fn(u64) -> String, e: std::io::Error) -> Error {
    file_error(
        path,
        format!("missing image for image_id {id}{}: {e}", record(id)),
    )
}

/// Decodes one image (PNG or JPEG) to RGB, scales it so its longer side is `size`
/// (bilinear), and places it at the top-left of a black `size × size` canvas.
fn decode(path: &Path, size: usize) -> std::result::Result<(Vec<u8>, (u16, u16)), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the image: {e}"))?;
    let rgb = image::load_from_memory(&bytes)
        .map_err(|e| format!("cannot decode the image: {e}"))?
        .to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err("the image is empty".into());
    }
    let scale = size as f64 / w.max(h) as f64;
    let nw = ((w as f64 * scale).round() as usize).clamp(1, size);
    let nh = ((h as f64 * scale).round() as usize).clamp(1, size);
    let resized = if (nw, nh) == (w, h) {
        rgb
    } else {
        image::imageops::resize(&rgb, nw as u32, nh as u32, FilterType::Triangle)
    };
    let mut canvas = vec![0u8; size * size * 3];
    let src = resized.as_raw();
    for y in 0..nh {
        canvas[y * size * 3..][..nw * 3].copy_from_slice(&src[y * nw * 3..][..nw * 3]);
    }
    Ok((canvas, (nw as u16, nh as u16)))
}

/// Reads a cache file; `None` when it is absent, stale or damaged.
fn read_cache(path: &Path, key: u64, ids: &[u64], size: usize) -> Option<Canvases> {
    let mut file = std::fs::File::open(path).ok()?;
    let n = ids.len();
    let pixels_len = n * size * size * 3;
    let header_len = 32 + n * 12;
    if file.metadata().ok()?.len() != (header_len + pixels_len) as u64 {
        return None;
    }
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header).ok()?;
    let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or([0; 8]));
    if &header[..8] != CACHE_MAGIC
        || word(8) != key
        || word(16) != size as u64
        || word(24) != n as u64
        || ids
            .iter()
            .enumerate()
            .any(|(i, &id)| word(32 + 8 * i) != id)
    {
        return None;
    }
    let extents: Vec<(u16, u16)> = header[32 + 8 * n..]
        .chunks_exact(4)
        .map(|b| {
            (
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
            )
        })
        .collect();
    if extents
        .iter()
        .any(|&(w, h)| w == 0 || h == 0 || w as usize > size || h as usize > size)
    {
        return None;
    }
    let mut pixels = vec![0u8; pixels_len];
    file.read_exact(&mut pixels).ok()?;
    Some(Canvases {
        size,
        pixels,
        extents,
    })
}

/// Writes a cache file atomically.
fn write_cache(path: &Path, key: u64, ids: &[u64], canvases: &Canvases) -> Result<()> {
    let n = ids.len();
    let mut bytes = Vec::with_capacity(32 + n * 12 + canvases.pixels.len());
    bytes.extend_from_slice(CACHE_MAGIC);
    for word in [key, canvases.size as u64, n as u64] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for &id in ids {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    for &(w, h) in &canvases.extents {
        bytes.extend_from_slice(&w.to_le_bytes());
        bytes.extend_from_slice(&h.to_le_bytes());
    }
    bytes.extend_from_slice(&canvases.pixels);
    write_atomically(path, &bytes)
}

/// Grid region features of every canvas (see [`GridConfig`]).
fn grid_regions(canvases: &Canvases, ids: &[u64], cfg: GridConfig) -> Result<RegionFeatures> {
    let (r, d) = (cfg.cells * cfg.cells, cfg.dim());
    let per_image: Vec<(Vec<f32>, Vec<f32>)> = (0..ids.len())
        .into_par_iter()
        .map(|row| grid_features(canvases, row, cfg))
        .collect();
    let mut features = Vec::with_capacity(ids.len() * r * d);
    let mut boxes = Vec::with_capacity(ids.len() * r * 4);
    for (f, b) in per_image {
        features.extend(f);
        boxes.extend(b);
    }
    RegionFeatures::new(
        ids.to_vec(),
        r,
        d,
        features,
        boxes,
        vec![r; ids.len()],
        Path::new("grid regions"),
    )
}

/// The grid features `[cells², dim]` and boxes `[cells², 4]` of one canvas; cells split
/// the image content (not the padding).
fn grid_features(canvases: &Canvases, row: usize, cfg: GridConfig) -> (Vec<f32>, Vec<f32>) {
    let (s, g, k) = (canvases.size, cfg.cells, cfg.pool);
    let pixels = canvases.pixels(row);
    let (w, h) = canvases.extents[row];
    let (w, h) = (w as usize, h as usize);
    let mut feats = Vec::with_capacity(g * g * cfg.dim());
    let mut boxes = Vec::with_capacity(g * g * 4);
    let px = |y: usize, x: usize, c: usize| pixels[(y * s + x) * 3 + c] as f32 / 255.0;
    for cy in 0..g {
        for cx in 0..g {
            let (y0, y1) = (cy * h / g, ((cy + 1) * h / g).max(cy * h / g + 1).min(h));
            let (x0, x1) = (cx * w / g, ((cx + 1) * w / g).max(cx * w / g + 1).min(w));
            let mut sum = [0f32; 3];
            let mut sq = [0f32; 3];
            let n = ((y1 - y0) * (x1 - x0)).max(1) as f32;
            for y in y0..y1 {
                for x in x0..x1 {
                    for c in 0..3 {
                        let v = px(y, x, c);
                        sum[c] += v;
                        sq[c] += v * v;
                    }
                }
            }
            let mean: [f32; 3] = std::array::from_fn(|c| sum[c] / n);
            feats.extend(mean);
            feats.extend((0..3).map(|c| (sq[c] / n - mean[c] * mean[c]).max(0.0).sqrt()));
            for c in 0..3 {
                for ty in 0..k {
                    for tx in 0..k {
                        let (ya, yb) = sub_range(y0, y1, ty, k);
                        let (xa, xb) = sub_range(x0, x1, tx, k);
                        let mut acc = 0f32;
                        for y in ya..yb {
                            for x in xa..xb {
                                acc += px(y, x, c);
                            }
                        }
                        feats.push(acc / ((yb - ya) * (xb - xa)).max(1) as f32);
                    }
                }
            }
            boxes.extend([
                x0 as f32 / w as f32,
                y0 as f32 / h as f32,
                x1 as f32 / w as f32,
                y1 as f32 / h as f32,
            ]);
        }
    }
    (feats, boxes)
}

/// The `i`-th of `k` near-equal parts of `lo..hi`, never empty when the range is not.
fn sub_range(lo: usize, hi: usize, i: usize, k: usize) -> (usize, usize) {
    let len = hi - lo;
    let a = lo + i * len / k;
    let b = (lo + (i + 1) * len / k).max(a + 1).min(hi);
    (a, b)
}
