//! The learning-rate schedule: linear warm-up from 0 to the peak rate, then linear decay
//! to 0 at the last step (the BERT / LXMERT fine-tuning schedule).

use serde::{Deserialize, Serialize};

/// Linear warm-up then linear decay over a fixed number of optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The peak learning rate, reached at the end of warm-up.
    pub peak: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Total optimizer steps of the run (the rate reaches 0 after the last one).
    pub total_steps: u64,
}

impl Schedule {
    /// The learning rate of the 1-based optimizer step `step`: `peak · step / warmup`
    /// during warm-up, then `peak · (total − step + 1) / (total − warmup)` down to
    /// `peak / (total − warmup)` at the last step; 0 past the end.
    pub fn lr(&self, step: u64) -> f64 {
        if step == 0 || step > self.total_steps {
            return 0.0;
        }
        if step <= self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps as f64;
        }
        let decay = (self.total_steps - self.warmup_steps) as f64;
        self.peak * (self.total_steps - step + 1) as f64 / decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_linearly() {
        let s = Schedule {
            peak: 1.0,
            warmup_steps: 4,
            total_steps: 12,
        };
        let got: Vec<f64> = (0..=13).map(|t| s.lr(t)).collect();
        let want = [
            0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0,
        ];
        for (t, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-12, "step {t}: {g} vs {w}");
        }
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = Schedule {
            peak: 2e-3,
            warmup_steps: 0,
            total_steps: 2,
        };
        assert_eq!(s.lr(1), 2e-3);
        assert_eq!(s.lr(2), 1e-3);
        assert_eq!(s.lr(3), 0.0);
    }
}
