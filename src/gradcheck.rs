//! Finite-difference gradient checking, used by the tests of every backward pass.
//!
//! Checks run in f64: a backward is compared with central differences of a scalar loss,
//! element by element, with a tolerance relative to the gradient's largest entry. At f64
//! the difference error is ~1e-10, so a backward that is off by even 1e-5 of the largest
//! entry fails.

/// Tolerances of a gradient check.
#[derive(Debug, Clone, Copy)]
pub struct GradCheckConfig {
    /// Step of the central difference.
    pub eps: f64,
    /// Allowed error relative to the largest |numeric gradient| entry.
    pub rtol: f64,
    /// Allowed absolute error.
    pub atol: f64,
    /// Check at most this many entries (spread evenly over the input); 0 = all.
    pub max_entries: usize,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        GradCheckConfig {
            eps: 1e-5,
            rtol: 1e-6,
            atol: 1e-9,
            max_entries: 0,
        }
    }
}

/// Compares `analytic` (∂loss/∂x as computed by a backward pass) against central
/// differences of `loss` around `x`. Returns a report of the worst entry on failure.
pub fn check_gradient(
    name: &str,
    x: &[f64],
    analytic: &[f64],
    mut loss: impl FnMut(&[f64]) -> f64,
    cfg: GradCheckConfig,
) -> Result<(), String> {
    if x.len() != analytic.len() {
        return Err(format!(
            "{name}: gradient has {} entries, input has {}",
            analytic.len(),
            x.len()
        ));
    }
    let stride = if cfg.max_entries == 0 || x.len() <= cfg.max_entries {
        1
    } else {
        x.len().div_ceil(cfg.max_entries)
    };
    let mut point = x.to_vec();
    let mut numeric = Vec::new();
    for i in (0..x.len()).step_by(stride) {
        point[i] = x[i] + cfg.eps;
        let up = loss(&point);
        point[i] = x[i] - cfg.eps;
        let down = loss(&point);
        point[i] = x[i];
        numeric.push((i, (up - down) / (2.0 * cfg.eps)));
    }
    let scale = numeric.iter().fold(0.0f64, |m, &(_, g)| m.max(g.abs()));
    let tol = cfg.atol + cfg.rtol * scale;
    let worst = numeric
        .iter()
        .map(|&(i, g)| {
            // A NaN anywhere is the worst possible error.
            let err = (analytic[i] - g).abs();
            (i, g, if err.is_nan() { f64::INFINITY } else { err })
        })
        .fold(None, |best: Option<(usize, f64, f64)>, cur| match best {
            Some(b) if b.2 >= cur.2 => Some(b),
            _ => Some(cur),
        });
    match worst {
        Some((i, g, err)) if err > tol => Err(format!(
            "{name}: gradient mismatch at entry {i}: analytic {:.10e}, numeric {g:.10e} \
             (error {err:.3e} > tolerance {tol:.3e}; largest entry {scale:.3e})",
            analytic[i]
        )),
        _ => Ok(()),
    }
}

/// Σ a·b — the scalar loss used to project an output onto a fixed random direction.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cubic(x: &[f64]) -> f64 {
        x.iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 1.0) * v.powi(3))
            .sum()
    }

    fn cubic_grad(x: &[f64]) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| 3.0 * (i as f64 + 1.0) * v * v)
            .collect()
    }

    #[test]
    fn accepts_the_true_gradient() {
        let x = [0.3, -1.2, 0.7, 2.0];
        check_gradient("cubic", &x, &cubic_grad(&x), cubic, Default::default()).unwrap();
    }

    #[test]
    fn rejects_a_slightly_wrong_gradient() {
        let x = [0.3, -1.2, 0.7, 2.0];
        let mut g = cubic_grad(&x);
        g[1] *= 1.0 + 1e-4;
        let err = check_gradient("cubic", &x, &g, cubic, Default::default()).unwrap_err();
        assert!(err.contains("entry 1"), "{err}");
    }

    #[test]
    fn rejects_nan() {
        let x = [0.3, -1.2];
        let g = [f64::NAN, 3.0 * 2.0 * 1.44];
        assert!(check_gradient("cubic", &x, &g, cubic, Default::default()).is_err());
    }
}
