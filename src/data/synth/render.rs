//! Rendering synthetic scenes: RGB pixels (flat shapes on a dark background, encoded as
//! PNG) and detector-like region features with boxes.
//!
//! A region feature is [one-hot colour (6) | one-hot shape (4) | one-hot size (2) | box
//! (4)] = 16 values; the one-hot parts get uniform noise in ±0.1, deterministic per image,
//! so the features look like a (very good) detector's rather than exact labels.

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::rng::{hash_uniform, seed_for};

use super::scene::{Colour, Object, Scene, Shape, Size, MAX_OBJECTS};

/// Regions per image in the features file (objects, then zero padding).
pub(crate) const REGIONS: usize = 8;
/// Values per region feature.
pub(crate) const FEATURE_DIM: usize = 6 + 4 + 2 + 4;
/// The background colour.
const BACKGROUND: [u8; 3] = [36, 36, 40];

const _: () = assert!(MAX_OBJECTS <= REGIONS);

/// The scene as `size × size` RGB pixels.
pub(crate) fn render(scene: &Scene, size: usize) -> Vec<u8> {
    let mut pixels: Vec<u8> = BACKGROUND
        .iter()
        .copied()
        .cycle()
        .take(size * size * 3)
        .collect();
    let side = size as f32;
    for o in &scene.objects {
        let r = o.size.radius() * side;
        let (cx, cy) = (o.cx * side, o.cy * side);
        let y0 = (cy - r).floor().max(0.0) as usize;
        let y1 = ((cy + r).ceil() as usize).min(size);
        let x0 = (cx - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil() as usize).min(size);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if inside(o.shape, dx, dy, r) {
                    pixels[(y * size + x) * 3..][..3].copy_from_slice(&o.colour.rgb());
                }
            }
        }
    }
    pixels
}

/// Whether offset (dx, dy) from the centre lies inside a shape of radius r.
fn inside(shape: Shape, dx: f32, dy: f32, r: f32) -> bool {
    match shape {
        Shape::Circle => dx * dx + dy * dy <= r * r,
        Shape::Square => dx.abs().max(dy.abs()) <= 0.8 * r,
        Shape::Diamond => dx.abs() + dy.abs() <= r,
        Shape::Triangle => {
            // Apex at the top (cy − r), base at cy + 0.8 r.
            let t = (dy + r) / (1.8 * r);
            (0.0..=1.0).contains(&t) && dx.abs() <= t * r
        }
    }
}

/// RGB pixels encoded as PNG.
pub(crate) fn png(pixels: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(pixels, size as u32, size as u32, ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot encode PNG: {e}"))?;
    Ok(out)
}

/// The box (x1, y1, x2, y2) of an object, in [0, 1].
fn object_box(o: &Object) -> [f32; 4] {
    let r = o.size.radius();
    [
        (o.cx - r).clamp(0.0, 1.0),
        (o.cy - r).clamp(0.0, 1.0),
        (o.cx + r).clamp(0.0, 1.0),
        (o.cy + r).clamp(0.0, 1.0),
    ]
}

/// Region features `[REGIONS, FEATURE_DIM]`, boxes `[REGIONS, 4]` and the region count
/// of a scene; the noise depends only on `(seed, image_id)`. Small objects' colour and
/// shape parts get Gaussian noise of standard deviation `small_noise` instead of the
/// uniform ±0.1 (a detector that is unsure about small objects).
pub(crate) fn regions(
    scene: &Scene,
    seed: u64,
    image_id: u64,
    small_noise: f64,
) -> (Vec<f32>, Vec<f32>, usize) {
    let mut feats = vec![0f32; REGIONS * FEATURE_DIM];
    let mut boxes = vec![0f32; REGIONS * 4];
    let noise_seed = seed_for(seed, &format!("regions {image_id}"));
    // Its own stream, so the Gaussian draws never reuse the uniform noise's hashes.
    let small_seed = seed_for(noise_seed, "small objects");
    for (k, o) in scene.objects.iter().enumerate() {
        let f = &mut feats[k * FEATURE_DIM..(k + 1) * FEATURE_DIM];
        let colour = Colour::ALL.iter().position(|&c| c == o.colour).unwrap_or(0);
        let shape = Shape::ALL.iter().position(|&s| s == o.shape).unwrap_or(0);
        let size = Size::ALL.iter().position(|&s| s == o.size).unwrap_or(0);
        f[colour] = 1.0;
        f[6 + shape] = 1.0;
        f[10 + size] = 1.0;
        for (j, v) in f[..12].iter_mut().enumerate() {
            let index = (k * FEATURE_DIM + j) as u64;
            *v += if o.size == Size::Small && j < 10 {
                small_noise as f32 * gaussian(small_seed, index)
            } else {
                (hash_uniform(noise_seed, index) - 0.5) * 0.2
            };
        }
        let b = object_box(o);
        f[12..].copy_from_slice(&b);
        boxes[k * 4..(k + 1) * 4].copy_from_slice(&b);
    }
    (feats, boxes, scene.objects.len())
}

/// A standard normal value that depends only on `(seed, index)` (Box–Muller on two
/// hashed uniforms).
fn gaussian(seed: u64, index: u64) -> f32 {
    let u1 = hash_uniform(seed, 2 * index).max(f32::MIN_POSITIVE);
    let u2 = hash_uniform(seed, 2 * index + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn objects_are_drawn_in_their_colour() {
        let scene = Scene::random(&mut Rng::new(3));
        let px = render(&scene, 64);
        for o in &scene.objects {
            let (x, y) = ((o.cx * 64.0) as usize, (o.cy * 64.0) as usize);
            assert_eq!(&px[(y * 64 + x) * 3..][..3], &o.colour.rgb(), "{o:?}");
        }
    }
}
